//! Long fat links (issue 28), through a real sshd behind a delay line:
//! output windows grow with the path, and what arrives is byte-exact, also
//! when the consumer stalls once the window has grown, and through
//! `sudo:root`. No timing is asserted: a round trip of 40 ms only makes the
//! window the limit, which is what lets it grow.

#![cfg(feature = "host")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

/// Chunks one direction of the delay line may hold (64 KiB each).
const LINE_CHUNKS: usize = 4096;

/// A loopback forwarder that delays each direction by `one_way`.
fn delay_line(upstream: u16, one_way: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (from, to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                delay(from, to, one_way);
            }
        }
    });
    port
}

fn delay(mut from: TcpStream, mut to: TcpStream, one_way: Duration) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(LINE_CHUNKS);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            if tx
                .send((Instant::now() + one_way, buf[..n].to_vec()))
                .is_err()
                || n == 0
            {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, data)) = rx.recv() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if data.is_empty() || to.write_all(&data).is_err() {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
        }
    });
}

/// sshd behind a 40 ms round trip, named `far` in its ssh_config.
fn far_sshd() -> Sshd {
    let sshd = Sshd::start();
    let port = delay_line(sshd.port, Duration::from_millis(20));
    let key_line = sshd
        .host_key_line()
        .replace(&format!(":{} ", sshd.port), &format!(":{port} "));
    std::fs::write(sshd.path("known_hosts"), key_line).unwrap();
    let cfg = sshd
        .config_block("far", "")
        .replace(&format!("Port {}", sshd.port), &format!("Port {port}"));
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    sshd
}

/// `sh -c SCRIPT` under a host reaching everything through `chain`, with
/// the delivery's window decisions logged.
fn run(sshd: &Sshd, chain: &str, script: &str) -> Outcome {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["--ssh-config", &sshd.ssh_config(), "--to", chain, "--"])
        .args(["sh", "-c", script])
        .env("MITOGEN_FAKESSH_LOG", "warn,router::client_end=debug")
        .env_remove("SSH_AUTH_SOCK");
    run_with(cmd, b"", Duration::from_secs(300))
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const MIB: usize = 1 << 20;

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_pull_over_a_long_link_grows_its_window_and_arrives_byte_exact() {
    require_sshd();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 96 * MIB, 28);
    let copy = sshd.path("copy.bin");
    let out = run(
        &sshd,
        "ssh:far",
        // Through a pipe, which the shim hands over to the host: the
        // host's own window grows (output into a file stays the shim's,
        // and keeps 2 MiB).
        &format!("ssh h cat '{}' | cat > '{}'", src.display(), copy.display()),
    );
    out.expect_code(0);
    assert_eq!(sha256(&copy), sha256(&src), "the pulled copy differs");
    let grown = format!("Stdout window {} -> ", 2 * MIB);
    assert!(
        out.stderr_text().contains(&grown),
        "the window never grew from 2 MiB: {}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_consumer_that_stalls_after_the_window_grew_loses_nothing() {
    require_sshd();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 128 * MIB, 29);
    let (first, rest) = (sshd.path("first"), sshd.path("rest"));
    // 64 MiB read at once (the window grows meanwhile), then nothing for
    // three seconds while the grown window fills the host's queues, then
    // the rest.
    let script = format!(
        "ssh h cat '{src}' | {{ dd bs=1M count=64 iflag=fullblock of='{first}' 2>/dev/null; sleep 3; cat > '{rest}'; }}",
        src = src.display(),
        first = first.display(),
        rest = rest.display(),
    );
    let out = run(&sshd, "ssh:far", &script);
    out.expect_code(0);
    let joined = sshd.path("joined");
    let both = [
        std::fs::read(&first).unwrap(),
        std::fs::read(&rest).unwrap(),
    ]
    .concat();
    std::fs::write(&joined, both).unwrap();
    assert_eq!(
        sha256(&joined),
        sha256(&src),
        "bytes were lost or reordered"
    );
    assert!(
        out.stderr_text().contains("Stdout window"),
        "the window never grew: {}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root, sshd and sudo (run ./tests/run)"]
fn a_pull_through_sudo_over_a_long_link_arrives_byte_exact() {
    require_sshd();
    require("sudo");
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 64 * MIB, 30);
    let copy = sshd.path("copy.bin");
    let out = run(
        &sshd,
        "ssh:far,sudo:root",
        &format!(
            "rsync --whole-file h:'{}' '{}' && ssh h 'id -un'",
            src.display(),
            copy.display()
        ),
    );
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "root\n");
    assert_eq!(sha256(&copy), sha256(&src), "the pulled copy differs");
}
