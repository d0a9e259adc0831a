//! Another user on the operator's machine (attacker 3): mfs-intruder, a
//! plain account (`.ci/accounts.sh`), squats the places where the daemon's
//! clients and the shims look for a socket (pre-creates the daemon's old
//! predictable directory, plants a symlink there, listens on a socket of
//! its own) and answers with a PATH whose programs would leave a marker.
//! The operator (root) must refuse before believing a byte, say so in one
//! line naming the place and the uid, and still get a daemon of its own.
//! Also: `stop` prints the shell code that undoes `start`'s, in sh, csh
//! and fish.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

const INTRUDER: &str = "mfs-intruder";
/// The daemon's directory as `start` used to choose it for root without
/// `$XDG_RUNTIME_DIR`: a name anybody could predict.
const OLD_PLACE: &str = "/tmp/mitogen-fakessh-daemon-0";

/// The intruder's listener: answers every connection with a welcome, every
/// control request with a status whose shims' directory is the intruder's,
/// and logs what it received (bytes and descriptors).
const LISTENER: &str = r#"
import json, os, socket, sys
path, log, fake_bin = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
open(log + ".ready", "w").close()
def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")
while True:
    conn, _ = s.accept()
    note("accepted")
    try:
        conn.send(b"+")
        msg, anc, _, _ = socket.recv_fds(conn, 64, 4)
        if msg or anc:
            note("received %r and %d descriptors" % (msg, len(anc)))
        for fd in anc:
            try:
                os.write(fd, b"INTRUDER-WROTE-THIS\n")
            except OSError:
                pass
        if msg in (b"?", b"."):
            status = {"pid": 1, "socket": path, "bin": fake_bin,
                      "real_scp": fake_bin + "/scp", "real_sftp": fake_bin + "/sftp",
                      "uptime_seconds": 0, "idle_timeout_seconds": 0, "contexts": []}
            conn.send(b"=" + json.dumps(status).encode())
    except OSError as e:
        note("error %s" % e)
    conn.close()
"#;

/// A listener of mfs-intruder's, in a directory of mfs-intruder's.
struct Intruder {
    /// The intruder's own directory (its listener's socket, log, fake bin).
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    marker: PathBuf,
    child: Child,
}

impl Intruder {
    /// As mfs-intruder: make `dir` (mode 0755), a fake bin in it whose
    /// programs touch a marker, and listen on `dir/SOCKET_NAME`.
    fn squat(dir: &Path, socket_name: &str) -> Intruder {
        let _ = std::fs::remove_dir_all(dir);
        let as_intruder = |script: &str| {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", INTRUDER, "--", "sh", "-c", script]);
            run_with(cmd, b"", Duration::from_secs(30))
        };
        let marker = dir.join("marker");
        let fake_bin = dir.join("bin");
        let mut script = format!(
            "set -e; umask 022; mkdir {d}; mkdir {b}",
            d = dir.display(),
            b = fake_bin.display()
        );
        for program in ["ssh", "scp", "sftp", "ls", "true", "echo"] {
            script.push_str(&format!(
                "; printf '#!/bin/sh\\ntouch {m}\\n' > {b}/{program}; chmod 755 {b}/{program}",
                m = marker.display(),
                b = fake_bin.display()
            ));
        }
        as_intruder(&script).expect_code(0);
        let socket = dir.join(socket_name);
        let log = dir.join("log");
        // setpriv execs the listener: the child is the listener, killed on
        // drop.
        let child = Command::new("setpriv")
            .arg(format!("--reuid={INTRUDER}"))
            .arg(format!("--regid={INTRUDER}"))
            .args(["--clear-groups", "/usr/bin/python3", "-c", LISTENER])
            .arg(&socket)
            .arg(&log)
            .arg(&fake_bin)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the intruder's listener did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::metadata(&socket).unwrap().uid(), uid_of(INTRUDER));
        Intruder {
            dir: dir.to_path_buf(),
            socket,
            log,
            marker,
            child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Nothing of the intruder's ran, and it received nothing.
    fn assert_nothing_believed(&self, label: &str) {
        assert!(
            !self.marker.exists(),
            "{label}: a program of the intruder's ran"
        );
        let log = self.log();
        assert!(
            !log.contains("received"),
            "{label}: the intruder received: {log}"
        );
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn require_intruder() -> u32 {
    require_root();
    require("runuser");
    require("setpriv");
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "the intruder's listener runs /usr/bin/python3: run ./tests/run, which installs it"
    );
    require_account(INTRUDER);
    uid_of(INTRUDER)
}

/// `mitogen-fakessh ARGS` as the operator, without `$XDG_RUNTIME_DIR` (as
/// under su, cron, CI), with `extra` environment.
fn operator(args: &[&str], extra: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("TMPDIR")
        .env_remove("MITOGEN_FAKESSH_SOCK")
        .env_remove("SSH_AUTH_SOCK");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run_with(cmd, b"", Duration::from_secs(60))
}

/// A refusal: exit 255, one line on stderr naming `place` and `uid`.
fn assert_refused(out: &Outcome, place: &str, needle: &str, label: &str) {
    assert_eq!(out.code(), 255, "{label}: {}", out.stderr_text());
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
    assert!(err.contains(place), "{label}: names {place}: {err}");
    assert!(err.contains(needle), "{label}: says {needle:?}: {err}");
    assert!(
        !out.stdout_text().contains("INTRUDER") && !err.contains("INTRUDER"),
        "{label}"
    );
}

/// `status`, `exec` and `stop` against `socket`, each refused.
fn clients_refuse(intruder: &Intruder, socket: &str, place: &str, needle: &str) {
    let by_flag = operator(&["status", "--socket", socket], &[]);
    assert_refused(&by_flag, place, needle, "status --socket");
    let env = [("MITOGEN_FAKESSH_SOCK", socket)];
    assert_refused(
        &operator(&["status", "--json"], &env),
        place,
        needle,
        "status",
    );
    let exec = operator(&["exec", "--", "ls", "/"], &env);
    assert_refused(&exec, place, needle, "exec");
    let stop = operator(&["stop", "-s"], &env);
    assert_refused(&stop, place, needle, "stop");
    // The shell still points there: stop undoes that anyway.
    assert!(
        stop.stdout_text().contains("unset MITOGEN_FAKESSH_SOCK;"),
        "{}",
        stop.stdout_text()
    );
    intruder.assert_nothing_believed(needle);
}

/// A legitimate `start` (no `--socket`, no `$XDG_RUNTIME_DIR`) gets a fresh
/// private place elsewhere, and works.
fn a_fresh_start_still_works(squatted: &str) {
    let out = operator(&["start", "-s", "--config", "none", "--to", "local"], &[]);
    out.assert_no_panic().expect_code(0);
    let text = out.stdout_text();
    let socket = text
        .lines()
        .find_map(|l| l.strip_prefix("MITOGEN_FAKESSH_SOCK='"))
        .and_then(|v| v.split('\'').next())
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    assert!(!socket.starts_with(squatted), "{socket}");
    let dir = Path::new(&socket).parent().unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("mitogen-fakessh-daemon-") && name.len() == 33,
        "{name}"
    );
    let meta = std::fs::symlink_metadata(dir).unwrap();
    assert!(meta.is_dir(), "a real directory");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
    let env = [("MITOGEN_FAKESSH_SOCK", socket.as_str())];
    let ran = operator(&["exec", "--", "ssh", "anyhost", "echo", "ours"], &env);
    ran.expect_code(0);
    assert_eq!(ran.stdout_text(), "ours\n");
    let stopped = operator(&["stop", "-s"], &env);
    stopped.expect_code(0);
    assert!(!dir.exists(), "stop removed its directory");
}

#[test]
#[ignore = "needs root, python3 and the mfs-intruder account (run ./tests/run)"]
fn a_squatted_daemon_place_is_refused_and_a_fresh_one_used() {
    let intruder_uid = require_intruder();
    let uid_text = format!("uid {intruder_uid}");
    let _ = std::fs::remove_file(OLD_PLACE);
    // 1. The old predictable directory, pre-created by the intruder, with
    //    its listener at the old socket name.
    {
        let intruder = Intruder::squat(Path::new(OLD_PLACE), "daemon.sock");
        let socket = intruder.socket.display().to_string();
        clients_refuse(&intruder, &socket, OLD_PLACE, &uid_text);
        assert!(
            !intruder.log().contains("accepted"),
            "refused before connecting: {}",
            intruder.log()
        );
        // start refuses that place by name, and makes its own without one.
        let named = operator(
            &[
                "start", "-s", "--socket", &socket, "--config", "none", "--to", "local",
            ],
            &[],
        );
        assert_refused(&named, OLD_PLACE, &uid_text, "start --socket");
        a_fresh_start_still_works(OLD_PLACE);
        intruder.assert_nothing_believed("start");
    }
    // 2. The old place as a symlink to the intruder's directory.
    {
        let target = PathBuf::from(format!("/tmp/mfs-intruder-place-{}", std::process::id()));
        let intruder = Intruder::squat(&target, "daemon.sock");
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", INTRUDER, "--", "ln", "-s"])
            .arg(&target)
            .arg(OLD_PLACE);
        run_with(cmd, b"", Duration::from_secs(20)).expect_code(0);
        let socket = format!("{OLD_PLACE}/daemon.sock");
        clients_refuse(&intruder, &socket, OLD_PLACE, "is a symbolic link");
        let named = operator(
            &[
                "start", "-s", "--socket", &socket, "--config", "none", "--to", "local",
            ],
            &[],
        );
        assert_refused(&named, OLD_PLACE, "is a symbolic link", "start --socket");
        a_fresh_start_still_works(OLD_PLACE);
        assert!(!intruder.log().contains("accepted"), "{}", intruder.log());
        intruder.assert_nothing_believed("symlink");
        let _ = std::fs::remove_file(OLD_PLACE);
    }
    // 3. Only the listener's uid gives it away: its socket moved into a
    //    private directory of root's and given to root (as only root could).
    {
        let target = PathBuf::from(format!("/tmp/mfs-intruder-moved-{}", std::process::id()));
        let intruder = Intruder::squat(&target, "daemon.sock");
        let ours = tempfile::tempdir().unwrap();
        let socket = ours.path().join("daemon.sock");
        std::fs::rename(&intruder.socket, &socket).unwrap();
        std::os::unix::fs::chown(&socket, Some(0), Some(0)).unwrap();
        let shown = socket.display().to_string();
        clients_refuse(&intruder, &shown, &shown, &format!("runs as {uid_text}"));
    }
}

#[test]
#[ignore = "needs root, python3 and the mfs-intruder account (run ./tests/run)"]
fn the_shim_refuses_a_fallback_socket_of_another_user() {
    let intruder_uid = require_intruder();
    let uid_text = format!("uid {intruder_uid}");
    let shim_dir = tempfile::tempdir().unwrap();
    let ssh = shim_dir.path().join("ssh");
    std::os::unix::fs::symlink(bin(), &ssh).unwrap();
    // A shim that became root believes the uid its host named in the
    // environment; without it, only its own and root's.
    let shim = |socket: &Path, host_uid: Option<u32>| {
        let mut cmd = Command::new(&ssh);
        cmd.args(["h", "echo", "ran"])
            .env_remove("MITOGEN_FAKESSH_FD")
            .env_remove("MITOGEN_FAKESSH_SOCK_UID")
            .env("MITOGEN_FAKESSH_SOCK", socket);
        if let Some(uid) = host_uid {
            cmd.env("MITOGEN_FAKESSH_SOCK_UID", uid.to_string());
        }
        run_with(cmd, b"", Duration::from_secs(30))
    };
    let target = PathBuf::from(format!("/tmp/mfs-intruder-shim-{}", std::process::id()));
    let intruder = Intruder::squat(&target, "control");
    let place = target.display().to_string();
    let direct = shim(&intruder.socket, None);
    assert_refused(&direct, &place, &uid_text, "shim, intruder's directory");
    assert!(!intruder.log().contains("accepted"), "{}", intruder.log());
    // Through a symlink in a directory of root's.
    let ours = tempfile::tempdir().unwrap();
    let link = ours.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let via_link = shim(&link.join("control"), Some(intruder_uid));
    assert_refused(
        &via_link,
        &link.display().to_string(),
        "is a symbolic link",
        "shim, symlink",
    );
    assert!(!intruder.log().contains("accepted"), "{}", intruder.log());
    // The listener's uid alone: its socket moved into root's private
    // directory and given to root.
    let moved = ours.path().join("control");
    std::fs::rename(&intruder.socket, &moved).unwrap();
    std::os::unix::fs::chown(&moved, Some(0), Some(0)).unwrap();
    let direct = shim(&moved, None);
    assert_refused(
        &direct,
        &moved.display().to_string(),
        &format!("runs as {uid_text}"),
        "shim, listener's uid",
    );
    assert!(!direct.stdout_text().contains("ran"));
    intruder.assert_nothing_believed("shim");
}

#[test]
#[ignore = "needs root, tcsh and fish (run ./tests/run)"]
fn stop_prints_the_code_that_undoes_start_in_sh_csh_and_fish() {
    require_root();
    require("tcsh");
    require("fish");
    let tmp = tempfile::tempdir().unwrap();
    let b = bin();
    let path = "/usr/local/bin:/usr/bin:/bin";
    let after = "printenv PATH; printenv MITOGEN_FAKESSH_SOCK || echo sock-unset; \
                 printenv MITOGEN_FAKESSH_SSH || echo ssh-unset";
    let scripts = [
        (
            "sh",
            format!(
                "eval \"$({b} start -s --config none --to local)\" >/dev/null; ssh h echo via-daemon; \
                 eval \"$({b} stop -s)\" >/dev/null; {after}"
            ),
        ),
        (
            "tcsh",
            format!(
                "eval `{b} start -c --config none --to local` >/dev/null; ssh h echo via-daemon; \
                 eval `{b} stop -c` >/dev/null; {after}"
            ),
        ),
        (
            "fish",
            format!(
                "{b} start --fish --config none --to local | source >/dev/null; ssh h echo via-daemon; \
                 {b} stop --fish | source >/dev/null; printenv PATH; \
                 printenv MITOGEN_FAKESSH_SOCK; or echo sock-unset; \
                 printenv MITOGEN_FAKESSH_SSH; or echo ssh-unset"
            ),
        ),
    ];
    for (shell, script) in scripts {
        let mut cmd = Command::new(shell);
        cmd.args(["-c", &script])
            .env("PATH", path)
            .env("TMPDIR", tmp.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("MITOGEN_FAKESSH_SOCK")
            .env_remove("SSH_AUTH_SOCK");
        let out = run_with(cmd, b"", Duration::from_secs(60));
        out.assert_no_panic();
        assert_eq!(
            out.stdout_text(),
            format!("via-daemon\n{path}\nsock-unset\nssh-unset\n"),
            "{shell}: {}",
            out.stderr_text()
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{shell}: the daemon's directory is gone"
        );
    }
}
