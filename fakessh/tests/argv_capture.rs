//! The ssh argv parser against argv captured live from the real clients:
//! a stub `ssh` records exactly what rsync, scp, sftp and git pass, and the
//! parser must find the same destination, login, port and command.
#![cfg(feature = "host")]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use shims::argv::parse;

/// Run `cmd` (which calls `stub`), return the argv the stub recorded.
fn os(words: &[String]) -> Vec<std::ffi::OsString> {
    words.iter().map(std::ffi::OsString::from).collect()
}

fn capture(dir: &Path, mut cmd: Command) -> Vec<String> {
    let log = dir.join("argv");
    let _ = std::fs::remove_file(&log);
    let _ = cmd
        .env("STUB_LOG", &log)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let raw = std::fs::read(&log).unwrap_or_else(|_| panic!("{cmd:?} never ran the stub"));
    raw.split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect()
}

fn stub(dir: &Path) -> String {
    let path = dir.join("ssh");
    std::fs::write(
        &path,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$STUB_LOG\"\nexit 255\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn rsync_argv() {
    require("rsync");
    let dir = tempfile::tempdir().unwrap();
    let ssh = stub(dir.path());
    let mut cmd = Command::new("rsync");
    cmd.args([
        "-a",
        "-z",
        "-e",
        &format!("{ssh} -p 2222"),
        "/etc/hostname",
        "deploy@web1:/srv/a b/",
    ]);
    let argv = capture(dir.path(), cmd);
    let inv = parse(&os(&argv)).unwrap();
    assert_eq!(inv.host, "web1");
    assert_eq!(inv.user.as_deref(), Some("deploy"));
    assert_eq!(inv.port, Some(2222));
    assert_eq!(inv.command_words()[0], "rsync");
    assert_eq!(inv.command_words()[1], "--server");
    assert!(
        String::from_utf8_lossy(&inv.command_line()).contains("/srv/a\\ b/"),
        "{argv:?}"
    );

    let mut cmd = Command::new("rsync");
    cmd.args(["-a", "-e", &ssh, "host:/src/", "/tmp/never"]);
    let inv = parse(&os(&capture(dir.path(), cmd))).unwrap();
    assert_eq!(inv.host, "host");
    assert!(inv.command_words().contains(&"--sender".to_string()));
}

#[test]
fn scp_argv_both_modes() {
    require("scp");
    let dir = tempfile::tempdir().unwrap();
    let ssh = stub(dir.path());
    let mut cmd = Command::new("scp");
    cmd.args([
        "-S",
        &ssh,
        "-P",
        "2022",
        "-A",
        "/etc/hostname",
        "bob@[::1]:/tmp/x",
    ]);
    let argv = capture(dir.path(), cmd);
    let inv = parse(&os(&argv)).unwrap();
    assert!(inv.subsystem, "{argv:?}");
    assert_eq!(inv.command_words(), vec!["sftp"]);
    assert_eq!(
        (inv.host.as_str(), inv.user.as_deref(), inv.port),
        ("::1", Some("bob"), Some(2022))
    );
    // scp -A passes `-A -oForwardAgent=no`: the flag wins, as in OpenSSH
    // (the -o keeps a config's ForwardAgent from applying without -A).
    assert_eq!(inv.option("ForwardAgent"), Some("no"));
    assert_eq!(inv.forward_agent, Some(true));

    let mut cmd = Command::new("scp");
    cmd.args(["-O", "-S", &ssh, "/etc/hostname", "h:/srv/a b$x"]);
    let argv = capture(dir.path(), cmd);
    let inv = parse(&os(&argv)).unwrap();
    assert!(!inv.subsystem);
    assert_eq!(
        String::from_utf8_lossy(&inv.command_line()),
        "scp -t /srv/a b$x",
        "{argv:?}"
    );
}

#[test]
fn sftp_argv() {
    require("sftp");
    let dir = tempfile::tempdir().unwrap();
    let ssh = stub(dir.path());
    let mut cmd = Command::new("sftp");
    cmd.args(["-S", &ssh, "-P", "2200", "-b", "/dev/null", "alice@files"]);
    let argv = capture(dir.path(), cmd);
    let inv = parse(&os(&argv)).unwrap();
    assert!(
        argv.iter().any(|a| a.contains(' ')),
        "sftp passes -oKey value words: {argv:?}"
    );
    assert!(inv.subsystem);
    assert_eq!(
        (inv.host.as_str(), inv.user.as_deref(), inv.port),
        ("files", Some("alice"), Some(2200))
    );
}

#[test]
fn git_argv() {
    require("git");
    let dir = tempfile::tempdir().unwrap();
    let ssh = stub(dir.path());
    let mut cmd = Command::new("git");
    cmd.args(["ls-remote", "ssh://git@forge:2222/srv/it's.git"])
        .env("GIT_SSH_COMMAND", &ssh)
        .env("GIT_SSH_VARIANT", "ssh");
    let argv = capture(dir.path(), cmd);
    let inv = parse(&os(&argv)).unwrap();
    assert_eq!(
        (inv.host.as_str(), inv.user.as_deref(), inv.port),
        ("forge", Some("git"), Some(2222))
    );
    assert_eq!(inv.option("SendEnv"), Some("GIT_PROTOCOL"));
    assert_eq!(inv.command.len(), 1);
    assert!(
        inv.command_words()[0].starts_with("git-upload-pack '/srv/it"),
        "{argv:?}"
    );
}
