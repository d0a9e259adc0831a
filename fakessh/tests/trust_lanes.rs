//! A hostile context below a real agent against that agent's other
//! children (issue 28's lanes meet issue 23's trust boundaries). The switch
//! to lanes travels on a well-known handle; a context can make the host
//! answer it dead on any handle it names as its reply handle. Here the
//! hostile context (`fakessh/tests/rogue_agent.py`, context 3 below the
//! real local agent 1) names the switch's: the host's dead reply goes down
//! agent 1's stream, and must pass there as any frame does, not break the
//! stream that also carries a root shell (context 2, `sudo:root` below
//! agent 1).
#![cfg(feature = "host")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::rogue::{encode, rogue_program};
use common::{bin, require, require_root, run_with};
use router::frame::{Frame, Header};
use router::message::{ContextId, FIRST_SESSION_ID, handle};
use router::session::{ExitStatus, SessionEvent, ToClient};

const ROGUE: ContextId = 3;
/// The good session is the first, the rogue's own the second.
const ROGUE_SESSION: ContextId = FIRST_SESSION_ID + 1;

#[test]
#[ignore = "needs root, sudo and python3 (run ./tests/run)"]
fn a_dead_reply_on_the_switch_handle_does_not_break_the_agent_above_the_asker() {
    require("python3");
    require("sudo");
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let rogue = rogue_program(dir.path());
    let answer = encode(&[
        ToClient::Event(SessionEvent::Exit(ExitStatus::Code(0))).to_frame(ROGUE_SESSION, ROGUE)
    ]);
    std::fs::write(path("answer"), answer).unwrap();
    // To the host, on a handle nobody serves, with the switch's handle as
    // the reply handle: the host answers dead on it, to the rogue, through
    // agent 1.
    let ask = Frame::cbor(
        Header {
            dst: 0,
            src: ROGUE,
            auth: ROGUE,
            handle: 9999,
            reply_to: handle::LANES_SWITCH,
        },
        &(),
    );
    std::fs::write(path("frames"), encode(&[ask.clone(), ask])).unwrap();
    let report = path("report");
    // The good session starts first (agent 1, then sudo:root as context
    // 2), and is still running when the rogue (context 3) attacks.
    let script = "ssh good 'sleep 3; id -un' & good=$!\n\
                  sleep 1\n\
                  ssh rogue true\n\
                  wait $good\n";
    let mut cmd = Command::new(bin());
    cmd.args([
        "--host",
        "good=local,sudo:root",
        "--host",
        "rogue=local,local",
        "--",
        "sh",
        "-c",
        script,
    ])
    .env("MITOGEN_FAKESSH_TEST_AGENT_PROGRAM", &rogue)
    .env("MITOGEN_FAKESSH_TEST_AGENT_CONTEXT", ROGUE.to_string())
    .env("ROGUE_REPORT", &report)
    .env("ROGUE_ANSWER", path("answer"))
    .env("ROGUE_FRAMES", path("frames"));
    let out = run_with(cmd, b"", Duration::from_secs(90));
    out.assert_no_panic();
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        report.contains("attacking"),
        "the rogue never ran as context 3: {report}\n{}",
        out.stderr_text()
    );
    assert!(
        report.contains(&format!("handle={}", handle::LANES_SWITCH)),
        "the dead reply never reached the rogue: {report}\n{}",
        out.stderr_text()
    );
    assert_eq!(out.code(), 0, "{}", out.stderr_text());
    assert_eq!(out.stdout_text(), "root\n", "{}", out.stderr_text());
    assert!(
        !out.stderr_text().contains("lane switch"),
        "{}",
        out.stderr_text()
    );
}
