//! Persistent contexts: `ssh h true` in a shell pointed at a
//! `mitogen-fakessh start` daemon, against OpenSSH ControlPersist (a
//! master kept by the first call), on loopback and at 50 ms RTT.

use std::process::Command;

use crate::harness::{Stats, fakessh_bin, me, ratio, run_cmd, samples};

/// The rows, `calls` calls each.
pub fn run(cfg: &str, calls: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (alias, label) in [("direct", "loopback"), ("wan", "50 ms RTT")] {
        let socket = dir.path().join(format!("{alias}.sock"));
        let socket = socket.display().to_string();
        run_cmd(Command::new(fakessh_bin()).args([
            "start",
            "-s",
            "-q",
            "--socket",
            &socket,
            "--config",
            "none",
            "--ssh-config",
            cfg,
            "--to",
            &format!("ssh:{alias}"),
        ]));
        let bin = format!("{socket}.bin");
        let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
        let loop_of = |cmd: &[&str]| {
            let mut c = Command::new(me());
            c.args(["time-loop", &calls.to_string(), "1"]).args(cmd);
            c
        };
        let ours = Stats::of(samples(&run_cmd(
            loop_of(&["ssh", "h", "true"])
                .env("PATH", &path)
                .env("MITOGEN_FAKESSH_SOCK", &socket)
                .env("MITOGEN_FAKESSH_SSH", format!("{bin}/ssh")),
        )));
        let control = dir.path().join(format!("cp-{alias}")).display().to_string();
        let persist = [
            "ssh",
            "-F",
            cfg,
            "-o",
            "ControlMaster=auto",
            "-o",
            &format!("ControlPath={control}"),
            "-o",
            "ControlPersist=120",
            alias,
            "true",
        ];
        let theirs = Stats::of(samples(&run_cmd(&mut loop_of(&persist))));
        run_cmd(Command::new(fakessh_bin()).args(["stop", "--socket", &socket]));
        let _ = Command::new("ssh")
            .args([
                "-F",
                cfg,
                "-o",
                &format!("ControlPath={control}"),
                "-O",
                "exit",
                alias,
            ])
            .stderr(std::process::Stdio::null())
            .status();
        rows.push(format!(
            "| `ssh h true` in a shell pointed at `mitogen-fakessh start`, {label} (against ControlPersist) | {} | – | {} | – / {} |",
            ours.ms(),
            theirs.ms(),
            ratio(ours.median, theirs.median)
        ));
    }
    rows
}
