//! Hostile input, and the places where OpenSSH's behaviour is the
//! reference: host and user names, ssh_config splitting, `-o` keywords,
//! arguments that are not UTF-8, SendEnv/SetEnv from the configuration,
//! and the host's own command line. Where the real `ssh` can answer the
//! same question, the test asks it too and compares.
#![cfg(feature = "host")]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use router::frame::{Frame, Header};
use router::message::handle;
use router::session::{RemoteCommand, SessionRequest};

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

/// The real ssh's answer to `args`: (exit status, stderr).
fn openssh(args: &[&str]) -> (i32, String) {
    require("ssh");
    let out = Command::new("ssh")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_hostile_hostname_never_reaches_match_exec() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir.path().join("config"),
        "Match exec \"true %h\"\n  User x\n",
    );
    let pwned = dir.path().join("pwned");
    let script = format!("ssh '$(touch {})' true", pwned.display());
    // On demand (no --to), as a wrapped git given a malicious URL would do it.
    let out = fakessh(&["--ssh-config", &config, "--", "sh", "-c", &script]);
    out.expect_error(255, "hostname contains invalid characters");
    assert!(!pwned.exists(), "the hostname ran a command");
    // OpenSSH says the same, with the same status.
    let (code, err) = openssh(&[
        "-F",
        &config,
        &format!("$(touch {})", pwned.display()),
        "true",
    ]);
    assert_eq!(code, 255);
    assert!(
        err.contains("hostname contains invalid characters"),
        "{err}"
    );
    assert!(!pwned.exists());
}

#[test]
fn a_hostile_user_name_never_reaches_proxy_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir.path().join("config"),
        "Host target\n  ProxyCommand sh -c 'echo %r'\n",
    );
    let pwned = dir.path().join("pwned");
    // No blank in it: `-o User=` takes one word.
    let user = format!("$(touch${{IFS}}{})", pwned.display());
    for script in [
        format!("ssh -l '{user}' target true"),
        format!("ssh '{user}@target' true"),
        format!("ssh -o 'User={user}' target true"),
    ] {
        let out = fakessh(&["--ssh-config", &config, "--", "sh", "-c", &script]);
        out.expect_error(255, "remote username contains invalid characters");
        assert!(!pwned.exists(), "{script}: the user name ran a command");
    }
}

/// A program that skips the shim and talks to the host directly gets the
/// same refusal: the host checks names before it builds any chain.
#[test]
fn the_host_checks_names_whoever_asks() {
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let config = write(
        &dir.path().join("config"),
        &format!("Match exec \"touch {}-%h\"\n  User x\n", pwned.display()),
    );
    let request = SessionRequest {
        host: "$(id)".into(),
        user: None,
        port: None,
        command: RemoteCommand::Exec(b"true".to_vec()),
        env: Vec::new(),
        pty: None,
        ssh_options: Vec::new(),
        ssh_config_file: None,
        forward_agent: false,
    };
    let header = Header {
        handle: handle::SESSION_OPEN,
        ..Header::default()
    };
    let mut bytes = bytes::BytesMut::new();
    Frame::cbor(header, &request).encode_into(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        r#"
import os, socket
ctrl = socket.socket(fileno=int(os.environ["MITOGEN_FAKESSH_FD"]))
mine, theirs = socket.socketpair()
socket.send_fds(ctrl, [b"S"], [theirs.fileno()])
theirs.close()
mine.sendall(bytes.fromhex("{hex}"))
mine.settimeout(20)
got = b""
while True:
    chunk = mine.recv(65536)
    if not chunk:
        break
    got += chunk
print("refused" if b"hostname contains invalid characters" in got else repr(got))
"#
    );
    let out = fakessh(&["--ssh-config", &config, "--", "python3", "-c", &script]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "refused\n", "{}", out.stderr_text());
    let ran: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("pwned"))
        .collect();
    assert!(ran.is_empty(), "Match exec ran for a hostile name: {ran:?}");
}

/// `ssh -G` through the shim resolves the file the way OpenSSH does: the
/// same words, quotes, escapes and comments.
#[test]
fn ssh_config_lines_are_split_as_openssh_splits_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir.path().join("config"),
        // (OpenSSH 9.2 splits `Match` lines its older way: double quotes
        // only there, for this comparison.)
        "Host h\n  Port 1 # comment\n  User 'ann'\n  HostName h\\ ost\n  IdentityFile \"/a b/c\"\nMatch exec \"test 1 = 1\"\n  SendEnv MITOGEN_FAKESSH_A\nHost *\n  SendEnv MITOGEN_FAKESSH_B\n",
    );
    let ours = fakessh(&["--to", "local", "--", "ssh", "-F", &config, "-G", "h"]);
    ours.expect_code(0);
    let theirs = Command::new("ssh")
        .args(["-F", &config, "-G", "h"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(theirs.status.success());
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    for key in ["user", "port", "hostname", "identityfile", "sendenv"] {
        let pick = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.split(' ').next() == Some(key))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(pick(&ours.stdout_text()), pick(&theirs), "{key}");
    }
    assert!(ours.stdout_text().contains("port 1\n"));
    assert!(ours.stdout_text().contains("user ann\n"));
    assert!(ours.stdout_text().contains("hostname h ost\n"));
    assert!(ours.stdout_text().contains("sendenv MITOGEN_FAKESSH_A\n"));
}

#[test]
fn bad_config_lines_fail_as_they_fail_in_openssh() {
    let dir = tempfile::tempdir().unwrap();
    for (text, message) in [
        (
            "Host h\n  Port 1 2\n",
            "line 2: keyword port extra arguments at end of line",
        ),
        ("Host h\n  User \"ab\n", "line 2: invalid quotes"),
        (
            "Host x\n  Bogus 1\n",
            ": line 2: Bad configuration option: bogus",
        ),
    ] {
        let config = write(&dir.path().join("config"), text);
        let out = fakessh(&["--to", "local", "--", "ssh", "-F", &config, "h", "true"]);
        out.expect_error(255, message);
        let (code, err) = openssh(&["-F", &config, "-G", "h"]);
        assert_eq!(code, 255, "{text}: OpenSSH accepted it");
        let line = message.split(": ").last().unwrap();
        assert!(err.contains(line), "{text}: OpenSSH said {err}");
    }
    // OpenSSH expands identity files after it has connected; we refuse
    // the configuration at once, with its message.
    let config = write(&dir.path().join("config"), "Host h\n  IdentityFile %Z\n");
    let out = fakessh(&["--to", "local", "--", "ssh", "-F", &config, "h", "true"]);
    out.expect_error(255, "percent_expand: unknown key %Z");
    // A single-quoted `Match exec` works, as in OpenSSH 9.6 and later.
    let config = write(
        &dir.path().join("config"),
        "Match exec 'test 1 = 1'\n  SetEnv LC_QUOTED=yes\n",
    );
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "ssh",
        "-F",
        &config,
        "h",
        "echo $LC_QUOTED",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "yes\n");
    // IgnoreUnknown before an unknown keyword makes it harmless.
    let config = write(
        &dir.path().join("config"),
        "IgnoreUnknown UseKeychain\nHost *\n  UseKeychain yes\n",
    );
    let out = fakessh(&["--to", "local", "--", "ssh", "-F", &config, "h", "echo ok"]);
    out.expect_code(0);
}

#[test]
fn unknown_dash_o_keywords_fail_like_openssh_and_known_ones_work() {
    let out = fakessh(&["--to", "local", "--", "ssh", "-o", "Bogus=1", "h", "true"]);
    out.expect_error(255, "command-line: line 0: Bad configuration option: bogus");
    let (code, err) = openssh(&["-o", "Bogus=1", "h", "true"]);
    assert_eq!(code, 255);
    assert!(
        err.contains("command-line: line 0: Bad configuration option: bogus"),
        "{err}"
    );
    // What clients really pass is accepted.
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "ssh",
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=60s",
        "-o",
        "ControlPath=/tmp/cm-%C",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=5",
        "-oForwardX11 no",
        "h",
        "echo ok",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "ok\n");
}

/// OpenSSH passes any bytes in the remote command; so do we, both ways.
#[test]
fn arguments_that_are_not_utf8_pass_unchanged() {
    require("rsync");
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(src.join(name), b"latin-1 name\n").unwrap();
    let mut remote = b"h:".to_vec();
    remote.extend_from_slice(src.join(name).as_os_str().as_bytes());
    let mut cmd = Command::new(bin());
    cmd.args(["--to", "local", "--", "rsync", "-a"])
        .arg(std::ffi::OsStr::from_bytes(&remote))
        .arg(format!("{}/", dst.display()))
        .env_remove("SSH_AUTH_SOCK");
    let out = run_with(cmd, b"", std::time::Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(std::fs::read(dst.join(name)).unwrap(), b"latin-1 name\n");
}

/// SendEnv and SetEnv come from the configuration files, not only from
/// `-o`, as with OpenSSH (Debian's /etc/ssh/ssh_config sends LANG).
#[test]
fn send_env_and_set_env_from_the_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir.path().join("config"),
        "Host h\n  SendEnv LANG LC_*\n  SetEnv LC_FROM_CONFIG=set\n",
    );
    let script = "LANG=C.UTF-8 LC_PAPER=C ssh h 'echo \"$LANG/$LC_PAPER/$LC_FROM_CONFIG\"'";
    let out = fakessh(&[
        "--ssh-config",
        &config,
        "--to",
        "local",
        "--",
        "sh",
        "-c",
        script,
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "C.UTF-8/C/set\n");
    // Without the file saying so, nothing is sent.
    let empty = write(&dir.path().join("empty"), "");
    let out = fakessh(&[
        "--ssh-config",
        &empty,
        "--to",
        "local",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.stdout_text(), "//\n");
}

#[test]
fn the_hosts_own_command_line() {
    let out = fakessh(&["--bogus", "x"]);
    out.expect_error(255, "unexpected argument '--bogus'");
    out.expect_stderr("tip:");
    fakessh(&["completions", "tcsh"]).expect_error(255, "unknown shell");
    let help = fakessh(&["--help"]);
    assert!(help.stdout_text().contains("MITOGEN_FAKESSH_LOG"));
    let mut cmd = Command::new(bin());
    cmd.args(["--to", "local", "--", "true"])
        .env("MITOGEN_FAKESSH_LOG", "[[[bad");
    let out = run_with(cmd, b"", std::time::Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(
        out.stderr_text().matches("is not a valid filter").count(),
        1,
        "{}",
        out.stderr_text()
    );
    // The shim directory is as the man page says.
    let modes = local_sh(
        "stat -c %a \"$(dirname \"$(command -v ssh)\")\" \"$(dirname \"$MITOGEN_FAKESSH_SOCK\")\"",
    );
    assert_eq!(modes.stdout_text(), "755\n700\n");
    let man = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/mitogen-fakessh.1"),
    )
    .unwrap();
    assert!(man.contains("mode 0755"));
    // COMMAND completes as a command in zsh.
    let zsh = fakessh(&["completions", "zsh"]);
    assert!(
        zsh.stdout_text().contains(":_cmdambivalent"),
        "{}",
        zsh.stdout_text()
    );
}

/// On a terminal, an upload shows its progress, unless `-q`.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn quiet_hides_the_upload_progress() {
    use common::sshd::{Sshd, require_sshd};
    require_sshd();
    require("script");
    for (quiet, shown) in [(false, true), (true, false)] {
        // A fresh server each time: its agent cache is empty, so the agent
        // is uploaded.
        let sshd = Sshd::start();
        sshd.write_client_files("target");
        let flags = if quiet { "-q " } else { "" };
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "script -qec '{} {flags}--ssh-config {} --to ssh:target -- true' /dev/null",
            bin(),
            sshd.ssh_config()
        ));
        let out = run_with(cmd, b"", std::time::Duration::from_secs(120));
        out.expect_code(0);
        assert!(
            sshd.cache_dir().read_dir().unwrap().next().is_some(),
            "no upload"
        );
        let terminal = out.stdout_text();
        assert_eq!(
            terminal.contains("uploading the agent"),
            shown,
            "quiet={quiet}: {terminal:?}"
        );
    }
}
