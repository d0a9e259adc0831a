//! OpenSSH 10.x ssh_config files against a real sshd (issue 25, defect 2):
//! a file with every keyword of OpenSSH 10.2 works, `RefuseConnection`
//! stops with OpenSSH's message and status before any connection, and the
//! `Match` criteria `version`, `sessiontype`, `command` and `tagged` choose
//! the block that names the server's port.
#![cfg(feature = "host")]

mod common;

use common::sshd::{Sshd, require_sshd};
use common::*;

/// The test server's block for `target`, then the crate's fixture with
/// every OpenSSH 10.2 keyword (first value wins, so the block's settings
/// stand).
fn every_keyword_config(sshd: &Sshd) -> String {
    let fixture = include_str!("../../ssh-config/tests/every_keyword.conf")
        .replace("@KEY@", &sshd.path("user_key").display().to_string())
        .replace(
            "@KNOWN_HOSTS@",
            &sshd.path("known_hosts").display().to_string(),
        )
        .replace("@ALIAS@", "target");
    let text = format!("{}{fixture}", sshd.config_block("target", ""));
    let path = sshd.path("every_keyword.conf");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The line of the fixture's `RefuseConnection`, in the written file.
fn refuse_line(config: &str) -> usize {
    let text = std::fs::read_to_string(config).unwrap();
    1 + text
        .lines()
        .position(|l| l.trim_start().starts_with("RefuseConnection "))
        .unwrap()
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_config_with_every_openssh_10_keyword_works() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), sshd.host_key_line()).unwrap();
    let config = every_keyword_config(&sshd);
    // As the host's ssh config, for an on-demand hostname...
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "target",
        "echo every-keyword-ok",
    ]);
    out.expect_code(0).assert_no_panic();
    assert_eq!(out.stdout_text(), "every-keyword-ok\n");
    assert!(!out.stderr_text().contains("Bad configuration option"));
    // ...and as the client's own `ssh -F`, for a --to chain too.
    let out = fakessh(&[
        "--to",
        &format!("ssh:root@{}:{}", sshd.addr, sshd.port),
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-F",
        &config,
        "target",
        "echo via-F",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "via-F\n");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn refuse_connection_stops_with_openssh_message_and_status() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), sshd.host_key_line()).unwrap();
    let config = every_keyword_config(&sshd);
    let line = refuse_line(&config);
    let before = sshd.accepted();
    // The fixture refuses under `Match tagged refuse`: ssh -P refuse.
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-P",
        "refuse",
        "target",
        "echo must-not-run",
    ]);
    out.expect_code(255);
    assert!(!out.stdout_text().contains("must-not-run"));
    let want =
        format!("{config} line {line}: RefuseConnection: this host is being retired: use web2");
    assert!(
        out.stderr_text().lines().any(|l| l.trim_end() == want),
        "want the line {want:?} in:\n{}",
        out.stderr_text()
    );
    // On the command line, whatever the argument (OpenSSH refuses on "no" too).
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-o",
        "RefuseConnection=no",
        "target",
        "echo must-not-run",
    ]);
    out.expect_code(255);
    assert!(
        out.stderr_text()
            .lines()
            .any(|l| l.trim_end() == "command-line line 0: RefuseConnection: no"),
        "{}",
        out.stderr_text()
    );
    // The host refuses a chain's hop its config refuses, though the
    // client's own hostname is not refused.
    let refusing = sshd.path("refusing.conf");
    std::fs::write(
        &refusing,
        format!(
            "Host target\n  RefuseConnection retired\n{}",
            sshd.config_block("target", "")
        ),
    )
    .unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &refusing.display().to_string(),
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "-F",
        "none",
        "anyhost",
        "echo must-not-run",
    ]);
    assert_ne!(out.code(), 0);
    assert!(!out.stdout_text().contains("must-not-run"));
    out.expect_stderr(&format!(
        "{} line 2: RefuseConnection: retired",
        refusing.display()
    ));
    assert_eq!(sshd.accepted(), before, "nothing connected to sshd");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn match_version_sessiontype_command_and_tagged_choose_the_port() {
    require_sshd();
    require("sftp");
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), sshd.host_key_line()).unwrap();
    // The server's port only where the new criteria hold; elsewhere port 1,
    // where nothing listens.
    let block: String = sshd
        .config_block("target", "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("Port "))
        .map(|l| format!("{l}\n"))
        .collect();
    let port = sshd.port;
    let config = sshd.path("match.conf");
    std::fs::write(
        &config,
        format!(
            "{block}\
             Match originalhost target version OpenSSH_10.* sessiontype exec command \"echo matched*\"\n  Port {port}\n\
             Match originalhost target tagged ops sessiontype shell,exec command=\"uptime\"\n  Port {port}\n\
             Match originalhost target sessiontype subsystem command sftp tagged \"\"\n  Port {port}\n\
             Match version OpenSSH_9*\n  Port {port}\n\
             Host *\n  Port 1\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let ssh = |args: &[&str]| {
        let mut all = vec!["--ssh-config", config.as_str(), "--", "ssh"];
        all.extend_from_slice(args);
        fakessh(&all)
    };
    // command and sessiontype exec (and version) hold.
    let out = ssh(&["target", "echo matched-command"]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "matched-command\n");
    // Another command: no block gives the port, the connection fails.
    let out = ssh(&["target", "echo other-command"]);
    assert_eq!(out.code(), 255, "{}", out.stderr_text());
    assert!(!out.stdout_text().contains("other-command"));
    // tagged: only with -P ops (and -o Tag=ops).
    let out = ssh(&["-P", "ops", "target", "uptime"]);
    out.expect_code(0);
    let out = ssh(&["-o", "Tag=ops", "target", "uptime"]);
    out.expect_code(0);
    let out = ssh(&["-P", "dev", "target", "uptime"]);
    assert_eq!(out.code(), 255, "{}", out.stderr_text());
    // sessiontype subsystem and command sftp, untagged: the real sftp.
    let batch = sshd.path("sftp.batch");
    std::fs::write(&batch, "pwd\n").unwrap();
    let batch = batch.display().to_string();
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "sftp",
        "-b",
        &batch,
        "target",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("Remote working directory"),
        "{}",
        out.stdout_text()
    );
    // Tagged, the subsystem's block does not hold.
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "sftp",
        "-o",
        "Tag=ops",
        "-b",
        &batch,
        "target",
    ]);
    assert_ne!(out.code(), 0);
}
