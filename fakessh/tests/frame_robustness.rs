//! Bad bytes on a frame stream close that stream with an error, never a
//! panic or a hang: fed to an agent's transport and to the host's session
//! reader.
#![cfg(feature = "host")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn header(magic: u16, len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&magic.to_be_bytes());
    for _ in 0..5 {
        h.extend_from_slice(&0u32.to_be_bytes());
    }
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn agent_with_input(input: &[u8]) -> Outcome {
    let mut cmd = Command::new(bin());
    cmd.arg("__agent");
    run_with(cmd, input, Duration::from_secs(40))
}

#[test]
fn agent_rejects_garbage_bad_magic_and_oversized_frames() {
    let mut random = vec![0u8; 4096];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random),
        ("bad magic", header(0x5353, 4)),
        ("oversized length", header(0x4d43, u32::MAX)),
        ("truncated frame", header(0x4d43, 100)[..20].to_vec()),
        (
            "valid header, payload not CBOR",
            [header(0x4d43, 3), b"\xff\xff\xff".to_vec()].concat(),
        ),
    ];
    for (what, input) in cases {
        let out = agent_with_input(&input);
        out.assert_no_panic();
        assert_ne!(out.code(), 0, "{what}: agent should fail");
        assert!(
            out.stderr_text().contains("mitogen-fakessh agent:"),
            "{what}: {}",
            out.stderr_text()
        );
    }
}

#[test]
fn host_survives_a_shim_that_sends_garbage() {
    require("python3");
    // A fake shim: pass a session socket to the host like the real one, then
    // send a bad frame. The host must close that session only, and a real
    // ssh right after must still work.
    let script = r#"
import os, socket, sys
ctrl = socket.socket(fileno=int(os.environ["MITOGEN_FAKESSH_FD"]))
for garbage in [b"SSH-2.0-nonsense\r\n" * 4, b"MC" + b"\0" * 20 + b"\xff\xff\xff\xff"]:
    mine, theirs = socket.socketpair()
    socket.send_fds(ctrl, [b"S"], [theirs.fileno()])
    theirs.close()
    mine.sendall(garbage)
    mine.settimeout(20)
    while mine.recv(65536):
        pass
    print("closed")
# A hello that announces stdin, stdout and stderr but carries none of them.
mine, theirs = socket.socketpair()
socket.send_fds(ctrl, [b"S\x07"], [theirs.fileno()])
theirs.close()
mine.settimeout(20)
while mine.recv(65536):
    pass
print("refused")
sys.stdout.flush()
os.execvp("ssh", ["ssh", "h", "echo still-alive"])
"#;
    let out = fakessh(&["--to", "local", "--", "python3", "-c", script]);
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "closed\nclosed\nrefused\nstill-alive\n");
    assert!(
        out.stderr_text()
            .contains("announces 3 descriptors but carries 0"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text().contains("bad frame magic"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text().contains("exceeds the limit"),
        "{}",
        out.stderr_text()
    );
}
