//! Persistent contexts: `start` (and its shell code), `exec`, `status`,
//! `stop`, the idle timeout, a daemon killed with -9, another user at the
//! socket; and, in the normal mode, sessions that outlive their command
//! (unison, a backgrounded ssh). Against the real sshd where a hop needs
//! one.
#![cfg(feature = "host")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

/// A daemon's socket in a private temporary directory.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn socket(&self) -> String {
        self.dir.path().join("d.sock").display().to_string()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // A test that failed half-way must not leave its daemon running.
        let _ = Command::new(bin())
            .args(["stop", "--socket", &self.socket()])
            .output();
    }
}

/// `mitogen-fakessh ARGS` with a deadline, no terminal, no ssh-agent.
fn run(args: &[&str]) -> Outcome {
    fakessh(args)
}

/// `sh -c SCRIPT` with `B` naming our executable.
fn sh(script: &str) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .env("B", bin())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("MITOGEN_FAKESSH_SOCK");
    run_with(cmd, b"", Duration::from_secs(120))
}

/// sshd with an ssh config naming it `h`, logging in as mfs-deploy.
fn deploy_sshd() -> (Sshd, String) {
    require_sshd();
    require_accounts();
    let sshd = Sshd::start();
    sshd.write_config_for("h", "mfs-deploy");
    let cfg = sshd.ssh_config();
    (sshd, cfg)
}

/// Poll `what` for up to 20 s.
fn eventually(what: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn exec_runs_and_an_evaluated_shell_share_one_ssh_and_one_sudo() {
    let (sshd, cfg) = deploy_sshd();
    let place = Place::new();
    let pw = password_file(place.dir.path(), DEPLOY_PASSWORD);
    // Each session prints the pid of the agent that ran it: the same pid is
    // the same sudo.
    let out = sh(&format!(
        "set -e; eval \"$($B start -s --socket {s} --config none --ssh-config {cfg} --password-file {pw} --to ssh:h,sudo:root)\" >/dev/null; \
         ssh h 'id -un; echo $PPID'; \
         $B exec -- ssh h 'echo $PPID'; \
         $B exec -- sh -c \"ssh h 'echo \\$PPID'\"; \
         $B status --json",
        s = place.socket()
    ));
    out.assert_no_panic().expect_code(0);
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("root"), "{text}");
    let pids: Vec<&str> = lines.by_ref().take(3).collect();
    assert!(
        pids.iter().all(|p| *p == pids[0]),
        "three sudo agents: {pids:?}"
    );
    assert_eq!(sshd.accepted(), 1, "one ssh connection");
    let status: serde_json::Value =
        serde_json::from_str(&lines.collect::<Vec<_>>().join("\n")).unwrap();
    let contexts = status["contexts"].as_array().unwrap();
    let sudo = contexts
        .iter()
        .find(|c| c["chain"] == "ssh:h,sudo:root")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(sudo["sessions_total"], 3);
    run(&["stop", "--socket", &place.socket()]).expect_code(0);
    assert!(!Path::new(&place.socket()).exists(), "the socket is gone");
}

#[test]
#[ignore = "needs root and the mfs-webapp account (run ./tests/run)"]
fn another_user_gets_no_session() {
    require_account("mfs-webapp");
    let place = Place::new();
    let out = run(&[
        "start",
        "-s",
        "--socket",
        &place.socket(),
        "--config",
        "none",
        "--to",
        "local",
    ]);
    out.expect_code(0);
    let bin_dir = format!("{}.bin", place.socket());
    let as_webapp = |extra: &str| {
        let script = format!(
            "{extra}MITOGEN_FAKESSH_SOCK={s} PATH={bin_dir}:$PATH ssh h echo got-in",
            s = place.socket()
        );
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "mfs-webapp", "--", "sh", "-c", &script]);
        run_with(cmd, b"", Duration::from_secs(60))
    };
    // The socket's directory is ours alone (and the shims in it too).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(place.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let denied = as_webapp("");
    assert_ne!(denied.code(), 0);
    assert!(!denied.stdout_text().contains("got-in"));
    assert!(
        denied.stderr_text().contains("Permission denied"),
        "{}",
        denied.stderr_text()
    );
    // Even with the socket opened to everybody, the daemon checks who
    // connects, refuses, and logs why.
    std::fs::set_permissions(place.socket(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = as_webapp("");
    assert_ne!(refused.code(), 0);
    assert!(!refused.stdout_text().contains("got-in"));
    assert!(
        refused
            .stderr_text()
            .contains("is not the account that runs it"),
        "{}",
        refused.stderr_text()
    );
    let log = std::fs::read_to_string(format!("{}.log", place.socket())).unwrap();
    assert!(log.contains("refused a connection from uid"), "{log}");
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn stop_leaves_no_remote_agent_or_command() {
    let (sshd, cfg) = deploy_sshd();
    let place = Place::new();
    let pw = password_file(place.dir.path(), DEPLOY_PASSWORD);
    run(&[
        "start",
        "-s",
        "--socket",
        &place.socket(),
        "--config",
        "none",
        "--ssh-config",
        &cfg,
        "--password-file",
        &pw,
        "--to",
        "ssh:h,sudo:root",
    ])
    .expect_code(0);
    // A command left running in the background, on both contexts.
    let marker = format!("sleep {}.{}", 900 + std::process::id() % 99, sshd.port);
    let out = run(&[
        "exec",
        "--socket",
        &place.socket(),
        "--",
        "sh",
        "-c",
        &format!("ssh h '{marker}' > /dev/null 2>&1 &"),
    ]);
    out.expect_code(0);
    let running = || sshd.descendants().join("\n");
    assert!(
        eventually(|| running().contains(&marker)),
        "the command never started"
    );
    assert!(running().contains("__agent"), "{}", running());
    run(&["stop", "--socket", &place.socket()]).expect_code(0);
    assert!(
        eventually(|| sshd.descendants().is_empty()),
        "left behind on the remote side:\n{}",
        running()
    );
    assert!(!Path::new(&place.socket()).exists());
    assert!(!Path::new(&format!("{}.bin", place.socket())).exists());
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn idle_contexts_end_and_the_next_command_reconnects() {
    require_sshd();
    let sshd = Sshd::start();
    let place = Place::new();
    let socket = place.socket();
    run(&[
        "start",
        "-s",
        "--socket",
        &socket,
        "--config",
        "none",
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--idle-timeout",
        "1s",
    ])
    .expect_code(0);
    let once = || {
        let out = run(&["exec", "--socket", &socket, "--", "ssh", "h", "echo", "up"]);
        out.expect_code(0);
        assert_eq!(out.stdout_text(), "up\n");
    };
    once();
    let contexts = || {
        let out = run(&["status", "--socket", &socket, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
        v["contexts"].as_array().unwrap().len()
    };
    assert!(eventually(|| contexts() == 0), "the idle context stayed");
    once();
    assert_eq!(sshd.accepted(), 2, "reconnected once");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_daemon_killed_with_9_is_noticed_and_replaced() {
    require_sshd();
    let sshd = Sshd::start();
    let place = Place::new();
    let socket = place.socket();
    let start = || {
        run(&[
            "start",
            "-s",
            "--socket",
            &socket,
            "--config",
            "none",
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
        ])
    };
    let out = start();
    out.expect_code(0);
    let pid: i32 = out
        .stdout_text()
        .lines()
        .find_map(|l| l.strip_prefix("MITOGEN_FAKESSH_PID="))
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim_matches('\'').parse().unwrap())
        .unwrap();
    run(&["exec", "--socket", &socket, "--", "ssh", "h", "true"]).expect_code(0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(|| !Path::new(&format!("/proc/{pid}")).exists()));
    let dead = run(&["exec", "--socket", &socket, "--", "ssh", "h", "true"]);
    dead.expect_error(255, "no mitogen-fakessh daemon at")
        .expect_stderr("start one");
    // The stale socket is replaced, never trusted.
    start().expect_code(0);
    let out = run(&[
        "exec", "--socket", &socket, "--", "ssh", "h", "echo", "again",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "again\n");
}

#[test]
fn bad_daemon_input() {
    let place = Place::new();
    let socket = place.socket();
    // No daemon: how to start one.
    run(&["exec", "--socket", &socket, "--", "true"])
        .assert_no_panic()
        .expect_error(255, "start one: eval \"$(mitogen-fakessh start)\"");
    run(&["status", "--socket", &socket]).expect_code(255);
    run(&["stop", "--socket", &socket]).expect_code(255);
    // A second start neither starts a second daemon nor ends the first.
    let first = run(&[
        "start", "-s", "--socket", &socket, "--config", "none", "--to", "local",
    ]);
    first.expect_code(0);
    run(&[
        "start", "-s", "--socket", &socket, "--config", "none", "--to", "local",
    ])
    .expect_error(255, "a daemon is already running at");
    let out = run(&[
        "exec", "--socket", &socket, "--", "ssh", "anyhost", "echo", "still",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "still\n");
    run(&["stop", "--socket", &socket]).expect_code(0);
    // Places that cannot hold a socket.
    let long = format!("{}/{}/d.sock", place.dir.path().display(), "x".repeat(110));
    run(&[
        "start", "--socket", &long, "--config", "none", "--to", "local",
    ])
    .expect_error(255, "a Unix socket path holds at most 107");
    let shared = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let in_shared = shared.path().join("d.sock");
    run(&[
        "start",
        "--socket",
        &in_shared.display().to_string(),
        "--config",
        "none",
        "--to",
        "local",
    ])
    .expect_error(255, "is writable by others");
}

#[test]
#[ignore = "needs root, sshd and unison (run ./tests/run)"]
fn sessions_outlive_their_command() {
    require_sshd();
    require("unison");
    let sshd = Sshd::start();
    let cfg = sshd.ssh_config();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    make_tree(&src, 0);
    std::fs::create_dir(&dst).unwrap();
    // unison does not wait for its ssh; OpenSSH's would finish quietly.
    let unison_home = tmp.path().join("unison");
    std::fs::create_dir_all(unison_home.join("local")).unwrap();
    std::fs::create_dir_all(unison_home.join("remote")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args([
        "--ssh-config",
        &cfg,
        "--to",
        "ssh:target",
        "--",
        "unison",
        "-batch",
        "-silent",
    ])
    .arg("-servercmd")
    .arg(format!(
        "env UNISON={}/remote unison",
        unison_home.display()
    ))
    .arg(&src)
    .arg(format!("ssh://h/{}", dst.display()))
    .env("UNISON", unison_home.join("local"))
    .env_remove("SSH_AUTH_SOCK");
    let out = run_with(cmd, b"", Duration::from_secs(120));
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stderr_text(), "", "unison through mitogen-fakessh");
    assert_same_tree(&src, &dst);
    // A backgrounded ssh whose parent exits first still finishes.
    let out = fakessh(&[
        "--ssh-config",
        &cfg,
        "--to",
        "ssh:target",
        "--",
        "sh",
        "-c",
        "ssh h 'sleep 2; echo done' &",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "done\n", "{}", out.stderr_text());
}
