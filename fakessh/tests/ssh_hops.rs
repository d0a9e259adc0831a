//! `ssh:` hops against a real OpenSSH sshd on loopback: rsync both ways,
//! connection reuse, on-demand mode, the agent cache, host keys,
//! authentication errors, cleanup, and a transfer past russh's rekey point.
#![cfg(feature = "host")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

fn to_target(sshd: &Sshd, script: &str) -> Outcome {
    fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "sh",
        "-c",
        script,
    ])
}

/// Run ssh-keygen; it must succeed.
fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mitogen-fakessh -v --to ssh:target -- ssh h COMMAND`.
fn verbose_ssh_via_target(sshd: &Sshd, command: &str) -> Outcome {
    fakessh(&[
        "-v",
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "h",
        command,
    ])
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn rsync_push_and_pull_through_ssh() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 30 << 20);
    let dst = tmp.path().join("pushed here");
    let cfg = sshd.ssh_config();
    fakessh(&[
        "--ssh-config",
        &cfg,
        "--to",
        "ssh:target",
        "--",
        "rsync",
        "-a",
        &format!("{}/", src.display()),
        &format!("web1:{}/", dst.display()),
    ])
    .assert_no_panic()
    .expect_code(0);
    assert_same_tree(&src, &dst);
    let back = tmp.path().join("pulled");
    fakessh(&[
        "--ssh-config",
        &cfg,
        "--to",
        "ssh:target",
        "--",
        "rsync",
        "-a",
        &format!("web1:{}/", dst.display()),
        &format!("{}/", back.display()),
    ])
    .expect_code(0);
    assert_same_tree(&src, &back);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn fifty_sessions_share_one_ssh_connection() {
    require_sshd();
    let sshd = Sshd::start();
    let out = to_target(
        &sshd,
        "for i in $(seq 50); do ssh h true || exit 1; done; ssh h 'exit 3'",
    );
    out.expect_code(3);
    assert_eq!(sshd.accepted(), 1, "sshd log:\n{}", sshd.log());
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn on_demand_mode_connects_hostnames_from_the_ssh_config() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    let dst = tmp.path().join("dst");
    // No --to, no --host: "target" is ssh:target, resolved through the config.
    fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "rsync",
        "-a",
        &format!("{}/", src.display()),
        &format!("target:{}/", dst.display()),
    ])
    .expect_code(0);
    assert_same_tree(&src, &dst);
    // A name the config does not know is tried as a real host name: here it
    // does not resolve, and the error names the hop.
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "no-such-host.invalid",
        "true",
    ]);
    out.expect_error(255, "ssh:no-such-host.invalid");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn agent_is_cached_and_a_corrupt_cache_entry_is_replaced() {
    require_sshd();
    let sshd = Sshd::start();
    let run = || verbose_ssh_via_target(&sshd, "echo ok");
    let first = run();
    first.expect_error(0, "uploading agent");
    let second = run();
    second.expect_code(0);
    assert_eq!(second.stdout_text(), "ok\n");
    assert!(
        second
            .stderr_text()
            .contains("agent found in the remote cache")
    );
    assert!(
        !second.stderr_text().contains("uploading agent"),
        "warm run uploaded again"
    );

    // Truncate the cached agent: detected by its checksum, uploaded again.
    // The cache holds the agent (named by its checksum) and the marker
    // saying it was seen to execute there; nothing else.
    let mut names: Vec<String> = std::fs::read_dir(sshd.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], format!(".ok-{}", names[1]));
    let cached = [sshd.cache_dir().join(&names[1])];
    let len = std::fs::metadata(&cached[0]).unwrap().len();
    // The last run's agent may still be exiting on the remote side after
    // the host is gone; until it has, its executable is busy (ETXTBSY).
    let start = Instant::now();
    let file = loop {
        match std::fs::OpenOptions::new().write(true).open(&cached[0]) {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the remote agent never exited"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    file.set_len(len / 2).unwrap();
    let third = run();
    third.expect_code(0);
    assert!(third.stderr_text().contains("uploading agent"));
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().len(), len);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cached[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn unknown_host_key_is_refused_and_known_hosts_untouched() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    let out = to_target(&sshd, "ssh h true");
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains("ssh:target"), "{err}");
    assert!(err.contains("not in known_hosts"), "{err}");
    assert!(err.contains("ED25519 SHA256:"), "{err}");
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        ""
    );
    assert_eq!(sshd.accepted(), 0);
}

/// known_hosts as OpenSSH writes and reads it: a hashed entry
/// (`ssh-keygen -H`), a wildcard pattern, and an entry of an older key type
/// only, which the server must then be asked for.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn known_hosts_hashed_wildcard_and_older_key_types() {
    require_sshd();
    require("ssh-keygen");
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("rsa_host_key");
    keygen(&[
        "-q",
        "-t",
        "rsa",
        "-b",
        "2048",
        "-N",
        "",
        "-f",
        rsa.to_str().unwrap(),
    ]);
    let sshd = Sshd::start_with(&[&format!("HostKey={}", rsa.display())]);
    let known = sshd.path("known_hosts");
    let ed25519_line = sshd.host_key_line();
    let key_part = |line: &str| line.split_once(' ').unwrap().1.trim().to_string();
    // Hashed by OpenSSH itself.
    std::fs::write(&known, &ed25519_line).unwrap();
    keygen(&["-q", "-H", "-f", known.to_str().unwrap()]);
    let hashed = std::fs::read_to_string(&known).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    to_target(&sshd, "ssh h true").expect_code(0);
    // A wildcard pattern, with a negation that does not apply.
    std::fs::write(
        &known,
        format!("[127.0.0.*]:*,!nothing {}\n", key_part(&ed25519_line)),
    )
    .unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // Only the RSA key recorded: it is asked for, and accepted.
    let rsa_pub = std::fs::read_to_string(keys.path().join("rsa_host_key.pub")).unwrap();
    let host_field = ed25519_line.split_once(' ').unwrap().0.to_string();
    let rsa_only = format!("{host_field} {}\n", rsa_pub.trim());
    std::fs::write(&known, &rsa_only).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    assert_eq!(std::fs::read_to_string(&known).unwrap(), rsa_only);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn accept_new_learns_the_host_key() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    std::fs::write(
        sshd.path("ssh_config"),
        sshd.config_block("target", "  StrictHostKeyChecking accept-new\n"),
    )
    .unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    let learned = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    let key = std::fs::read_to_string(sshd.path("host_key.pub")).unwrap();
    let key_b64 = key.split_whitespace().nth(1).unwrap();
    assert!(learned.contains(key_b64), "known_hosts: {learned}");
    assert!(learned.contains(&format!("[127.0.0.1]:{}", sshd.port)));
    // And it is now trusted under the strict default.
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", "")).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // With HashKnownHosts (Debian's default), learned under a hashed name.
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    let extra = "  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n";
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", extra)).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    let learned = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    assert!(learned.starts_with("|1|"), "known_hosts: {learned}");
    assert!(!learned.contains("127.0.0.1") && learned.contains(key_b64));
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", "")).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn changed_host_key_is_refused() {
    require_sshd();
    let sshd = Sshd::start();
    let other = tempfile::tempdir().unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other.path().join("k"))
        .status()
        .unwrap();
    assert!(st.success());
    let wrong = std::fs::read_to_string(other.path().join("k.pub")).unwrap();
    let mut w = wrong.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        w.next().unwrap(),
        w.next().unwrap()
    );
    std::fs::write(sshd.path("known_hosts"), &line).unwrap();
    std::fs::write(
        sshd.path("ssh_config"),
        sshd.config_block("target", "  StrictHostKeyChecking accept-new\n"),
    )
    .unwrap();
    let out = to_target(&sshd, "ssh h true");
    out.expect_error(255, "CHANGED");
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        line
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn authentication_failure_names_the_hop() {
    require_sshd();
    let sshd = Sshd::start();
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("not_authorized");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = sshd.config_block("target", "").replace(
        &sshd.path("user_key").display().to_string(),
        &key.display().to_string(),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let start = Instant::now();
    let out = to_target(&sshd, "ssh h true");
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains("ssh:target: authentication failed"), "{err}");
    assert!(err.contains("not_authorized"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30));

    // --password-file (for sudo/su/doas) is never offered to an sshd: the
    // same failure, no retry loop (fakessh/tests/trust_secrets.rs shows it unsent).
    let pw = other.path().join("pw");
    std::fs::write(&pw, "wrong-password\n").unwrap();
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&pw, private).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--password-file",
        pw.to_str().unwrap(),
        "--to",
        "ssh:target",
        "--",
        "true",
    ]);
    out.expect_error(255, "ssh:target: authentication failed");
}

#[test]
fn refused_connection_names_the_hop() {
    let port = common::sshd::free_port();
    let out = fakessh(&["--to", &format!("ssh:root@127.0.0.1:{port}"), "--", "true"]);
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains(&format!("ssh:root@127.0.0.1:{port}")), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn second_ssh_hop_goes_through_the_first_agent() {
    require_sshd();
    let sshd = Sshd::start();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target,ssh:target",
        "--",
        "ssh",
        "h",
        "echo $PPID",
    ]);
    out.expect_code(0);
    // Two connections: the first from the host, the second from its agent.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
}

/// Kills the host on drop, so a failing assertion never leaves it behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pgrep(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
}

/// Whether a process runs an executable from `dir`.
fn running_from(dir: &std::path::Path) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read_link(entry.path().join("exe")).is_ok_and(|exe| exe.starts_with(dir))
    })
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn killing_the_host_ends_remote_agents_and_commands() {
    require_sshd();
    require("pgrep");
    let sshd = Sshd::start();
    let marker = 40000 + (std::process::id() % 20000);
    let host = Command::new(bin())
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
            "--",
            "ssh",
            "h",
        ])
        .arg(format!("sleep {marker}"))
        .env_remove("SSH_AUTH_SOCK")
        .spawn()
        .unwrap();
    let mut host = KillOnDrop(host);
    // Anchored: the host's and the shim's own command lines contain the
    // words too, only the remote command is exactly this.
    let command = format!("^sleep {marker}$");
    // The agent runs from the cache (exec'd through the descriptor the
    // bootstrap hashed it on: its command line names that descriptor).
    let agent = || running_from(&sshd.cache_dir());
    let start = Instant::now();
    while !(pgrep(&command) && agent()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the remote command never started; sshd log:\n{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .args(["-9", &host.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = host.0.wait();
    let start = Instant::now();
    while pgrep(&command) || agent() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "remote processes still running 5 s after the host died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// More than 1 GiB through one ssh connection: russh re-keys after 1 GiB by
/// default, and the session must survive it.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn transfer_past_the_rekey_limit() {
    require_sshd();
    let sshd = Sshd::start();
    let bytes: u64 = 1200 << 20;
    let out = to_target(
        &sshd,
        &format!(
            "head -c {bytes} /dev/zero | ssh h 'wc -c'; ssh h 'head -c {bytes} /dev/zero' | wc -c"
        ),
    );
    out.expect_code(0);
    let counts: Vec<u64> = out
        .stdout_text()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(counts, vec![bytes, bytes]);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn hostnames_from_included_files_and_match_blocks() {
    require_sshd();
    let sshd = Sshd::start();
    // The alias is defined only in an included file, and its port only by a
    // `Match` on the HostName obtained so far (and on this machine's
    // loopback interface being up); a later catch-all names a
    // port nobody listens on. Skipping either the Include or the Match
    // fails the connection.
    let conf_d = sshd.path("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    let block: String = sshd
        .config_block("included", "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("Port "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(conf_d.join("10-included.conf"), block).unwrap();
    let cfg = format!(
        "Include {}/*.conf\nMatch host {} originalhost included localnetwork 127.0.0.0/8\n  Port {}\nHost *\n  Port 1\n",
        conf_d.display(),
        sshd.addr,
        sshd.port
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "included",
        "echo from-the-included-host",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "from-the-included-host\n");
    // A broken Match line is a one-line error naming the file and line.
    std::fs::write(sshd.path("ssh_config"), "Match hots x\n").unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "included",
        "true",
    ]);
    assert_ne!(out.code(), 0);
    out.expect_stderr("line 1: unsupported Match attribute \"hots\"");
}

/// An SSH_ASKPASS program that logs each prompt it is given and answers
/// with the contents of a file.
struct Askpass {
    program: std::path::PathBuf,
    prompts: std::path::PathBuf,
    answer: std::path::PathBuf,
}

impl Askpass {
    fn new(sshd: &Sshd) -> Askpass {
        use std::os::unix::fs::PermissionsExt;
        let a = Askpass {
            program: sshd.path("askpass"),
            prompts: sshd.path("prompts"),
            answer: sshd.path("answer"),
        };
        let script = format!(
            "#!/bin/sh\necho \"$1\" >> {}\ncat {}\n",
            a.prompts.display(),
            a.answer.display()
        );
        std::fs::write(&a.program, script).unwrap();
        std::fs::set_permissions(&a.program, std::fs::Permissions::from_mode(0o755)).unwrap();
        a
    }

    fn answer(&self, text: &str) {
        std::fs::write(&self.answer, format!("{text}\n")).unwrap();
    }

    /// `ssh h SCRIPT` through `chain`, with this program forced as
    /// SSH_ASKPASS; the outcome and the prompts it was shown.
    fn run(&self, sshd: &Sshd, chain: &str, script: &str) -> (Outcome, String) {
        let _ = std::fs::remove_file(&self.prompts);
        let mut cmd = Command::new(bin());
        cmd.args(["--ssh-config", &sshd.ssh_config(), "--to", chain, "--"])
            .args(["ssh", "h", script])
            .env_remove("SSH_AUTH_SOCK")
            .env("SSH_ASKPASS", &self.program)
            .env("SSH_ASKPASS_REQUIRE", "force");
        let out = run_with(cmd, b"", Duration::from_secs(120));
        let asked = std::fs::read_to_string(&self.prompts).unwrap_or_default();
        (out, asked)
    }
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn a_password_is_asked_for_when_no_key_works() {
    require_sshd();
    require_account("mfs-deploy");
    let sshd = Sshd::start();
    // No usable key: the identity file does not exist.
    let no_key = std::path::Path::new("/nonexistent/key");
    let block = |alias: &str, extra: &str| {
        sshd.config_block_with_keys(alias, "mfs-deploy", &[no_key], extra)
    };
    let cfg = format!("{}{}", block("pw", ""), block("batch", "  BatchMode yes\n"));
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    askpass.answer("deploy-pw-4711");
    let (out, asked) = askpass.run(&sshd, "ssh:pw", "whoami");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-deploy\n");
    assert_eq!(asked, "mfs-deploy@127.0.0.1's password: \n");
    // A wrong password: asked three times, then a one-line error.
    askpass.answer("not-the-password");
    let (out, asked) = askpass.run(&sshd, "ssh:pw", "whoami");
    out.expect_code(255);
    assert_eq!(asked.lines().count(), 3, "{asked}");
    out.expect_stderr("password (3 wrong)");
    // BatchMode: never asked.
    let (out, asked) = askpass.run(&sshd, "ssh:batch", "whoami");
    out.expect_code(255);
    assert_eq!(asked, "");
}

/// A server that takes passwords only through keyboard-interactive (PAM),
/// as many do: the prompt it sends is shown and answered.
#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn keyboard_interactive_prompts_are_answered() {
    require_sshd();
    require_account("mfs-deploy");
    let sshd = Sshd::start_with(&[
        "UsePAM=yes",
        "KbdInteractiveAuthentication=yes",
        "PasswordAuthentication=no",
    ]);
    let no_key = std::path::Path::new("/nonexistent/key");
    let cfg = sshd.config_block_with_keys("kbd", "mfs-deploy", &[no_key], "");
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    askpass.answer("deploy-pw-4711");
    let (out, asked) = askpass.run(&sshd, "ssh:kbd", "whoami");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-deploy\n");
    // Named by user and host, as OpenSSH shows it.
    assert_eq!(
        asked,
        "(mfs-deploy@127.0.0.1) Password: \n",
        "{}",
        sshd.log()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn encrypted_key_files_ask_for_their_passphrase() {
    require_sshd();
    require("ssh-keygen");
    let sshd = Sshd::start();
    let key = sshd.path("locked_key");
    let locked_with = |path: &std::path::Path, passphrase: &str| {
        keygen(&[
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-f",
            path.to_str().unwrap(),
        ])
    };
    locked_with(&key, "open sesame");
    // A second encrypted key that the server does not know: offered first,
    // it must not be asked about.
    let stranger = sshd.path("stranger_key");
    locked_with(&stranger, "other");
    let public = std::fs::read_to_string(sshd.path("locked_key.pub")).unwrap();
    let mut authorized = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    authorized.push_str(&public);
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    // Only the two encrypted keys are offered (the usual test key is
    // swapped out).
    let block = |alias: &str, extra: &str| {
        sshd.config_block_with_keys(alias, "root", &[&stranger, &key], extra)
    };
    let cfg = format!(
        "{}{}",
        block("locked", ""),
        block("batch", "  BatchMode yes\n")
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    let run = |chain: &str| askpass.run(&sshd, chain, "echo unlocked");
    // Right passphrase: asked once, although two hops log in with the key,
    // and never about the key the server does not take.
    askpass.answer("open sesame");
    let (out, asked) = run("ssh:locked,ssh:locked");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "unlocked\n");
    assert_eq!(
        asked,
        format!("Enter passphrase for key '{}': \n", key.display())
    );
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
    // Wrong passphrase: asked three times (NumberOfPasswordPrompts), then a
    // one-line error that says so. (The server also takes passwords, so,
    // as with OpenSSH, the same answer is then tried three times as one.)
    askpass.answer("guess");
    let (out, asked) = run("ssh:locked");
    out.expect_code(255);
    let passphrase_prompts = asked
        .lines()
        .filter(|l| l.starts_with("Enter passphrase for key"))
        .count();
    assert_eq!(passphrase_prompts, 3, "{asked}");
    out.expect_stderr("wrong passphrase, 3 tries");
    out.expect_stderr("stranger_key (encrypted; not accepted by the server)");
    // BatchMode: never asked.
    let (out, asked) = run("ssh:batch");
    out.expect_code(255);
    assert_eq!(asked, "");
    out.expect_stderr("BatchMode forbids asking");
    // Loaded into ssh-agent, the key is used from there, IdentitiesOnly
    // notwithstanding: nothing is asked.
    require("ssh-agent");
    require("ssh-add");
    let agent = TestAgent::start(sshd.path("agent.sock"), &[]);
    askpass.answer("open sesame");
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .env("SSH_ASKPASS", &askpass.program)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let _ = std::fs::remove_file(&askpass.prompts);
    let mut cmd = Command::new(bin());
    cmd.args([
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:locked",
        "--",
    ])
    .args(["ssh", "h", "echo from-agent"])
    .env("SSH_AUTH_SOCK", &agent.sock)
    .env("SSH_ASKPASS", &askpass.program)
    .env("SSH_ASKPASS_REQUIRE", "force");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "from-agent\n");
    assert_eq!(
        std::fs::read_to_string(&askpass.prompts).unwrap_or_default(),
        ""
    );
}

/// sshd starts key re-exchanges itself (every 1 MiB and every second
/// here), in the middle of transfers and while the connection sits idle;
/// russh must answer each one without losing a byte or the connection.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn server_initiated_rekeys_during_transfers_and_idle_time() {
    require_sshd();
    let sshd = Sshd::start_with(&["RekeyLimit=1M 1s", "LogLevel=DEBUG1"]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_random_file(&data, 24 << 20, 7);
    let remote = tmp.path().join("remote");
    let out = to_target(
        &sshd,
        &format!(
            "ssh h 'cat > {r}' < {d} && sleep 3 && ssh h 'cat {r}' | cmp - {d} && sleep 3 && ssh h 'echo still-here'",
            d = data.display(),
            r = remote.display()
        ),
    );
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "still-here\n");
    let log = sshd.log();
    let rekeys = log.matches("SSH2_MSG_KEXINIT sent").count();
    // One at login, then about 24 per transfer and some while idle.
    assert!(rekeys > 40, "only {rekeys} key exchanges:\n{log}");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn host_certificates_from_a_known_authority() {
    require_sshd();
    require("ssh-keygen");
    let keys = Sshd::start();
    let ca = keys.path("ca");
    let host_pub = keys.path("host_key.pub");
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "test-ca",
        "-f",
        ca.to_str().unwrap(),
    ]);
    // Certificates for the same host key: one good, one naming another
    // host, one long expired.
    let sign = |id: &str, principal: &str, validity: &str| {
        let dir = keys.path(id);
        std::fs::create_dir(&dir).unwrap();
        let public = dir.join("host_key.pub");
        std::fs::copy(&host_pub, &public).unwrap();
        keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            id,
            "-h",
            "-n",
            principal,
            "-V",
            validity,
            public.to_str().unwrap(),
        ]);
        dir.join("host_key-cert.pub").display().to_string()
    };
    let good = sign("good-cert", "127.0.0.1", "-5m:+1h");
    let wrong = sign("wrong-cert", "db.example.org", "-5m:+1h");
    let expired = sign("expired-cert", "127.0.0.1", "20200101:20200102");
    let ca_line = |marker: &str| {
        let ca_pub = std::fs::read_to_string(keys.path("ca.pub")).unwrap();
        format!("{marker} 127.0.0.1,[127.0.0.1]:* {ca_pub}")
    };
    let run = |sshd: &Sshd, known_hosts: &str| {
        // known_hosts holds no plain key for the server: only the CA.
        std::fs::write(sshd.path("known_hosts"), known_hosts).unwrap();
        verbose_ssh_via_target(sshd, "echo certified")
    };
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={good}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "certified\n");
    out.expect_stderr("host certificate \"good-cert\" signed by ED25519 SHA256:");
    // The CA revoked: refused, and said so.
    let revoked = format!("{}{}", ca_line("@cert-authority"), ca_line("@revoked"));
    let out = run(&sshd, &revoked);
    out.expect_error(255, "@revoked");
    // Without the CA line the certificate is not asked for, and the plain
    // key is unknown.
    let out = run(&sshd, "");
    out.expect_error(255, "is not in known_hosts");
    drop(sshd);
    // A certificate for another host is refused, naming what it names.
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={wrong}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_error(255, "it names db.example.org, not 127.0.0.1");
    drop(sshd);
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={expired}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_error(255, "outside its validity period");
}

/// `rsync -e "ssh -i KEY -o ..."` in on-demand mode: the client's own
/// options configure the connection the host opens for it, ahead of the
/// ssh config, as they would for OpenSSH.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn the_clients_ssh_options_configure_an_on_demand_connection() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    // The config names the host, but neither a key nor its known_hosts.
    let cfg = format!(
        "Host target\n  HostName {}\n  Port {}\n  User root\n  IdentitiesOnly yes\n  \
         IdentityFile /nonexistent/key\n  GlobalKnownHostsFile /dev/null\n  \
         UserKnownHostsFile /nonexistent/known_hosts\n",
        sshd.addr, sshd.port
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&["--ssh-config", &sshd.ssh_config(), "ssh", "target", "true"]);
    out.expect_error(255, "not in known_hosts");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    let dst = tmp.path().join("dst");
    // -i names the key relative to the client's directory.
    let rsh = format!(
        "ssh -i user_key -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        sshd.path("known_hosts").display()
    );
    let mut cmd = Command::new(bin());
    cmd.current_dir(sshd.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "rsync",
            "-a",
            "-e",
            &rsh,
        ])
        .arg(format!("{}/", src.display()))
        .arg(format!("target:{}/", dst.display()));
    run_with(cmd, b"", Duration::from_secs(120)).expect_code(0);
    assert_same_tree(&src, &dst);
    // -F: the client's own config file, in place of the host's, for a name
    // only that file knows (given relative to the client's directory), and
    // reached through a jump host only that file knows either.
    let client_config = format!(
        "{}{}",
        sshd.config_block("jump-in-F", ""),
        sshd.config_block("only-in-F", "  ProxyJump jump-in-F\n")
    );
    std::fs::write(sshd.path("client_config"), client_config).unwrap();
    let logins = sshd.accepted();
    let mut cmd = Command::new(bin());
    cmd.current_dir(sshd.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "ssh",
            "-F",
            "client_config",
        ])
        .args(["only-in-F", "echo named-by-F"]);
    let out = run_with(cmd, b"", Duration::from_secs(120));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "named-by-F\n");
    assert_eq!(sshd.accepted(), logins + 2, "{}", sshd.log());
    let out = fakessh(&["ssh", "-F", "/nonexistent/config", "x", "true"]);
    // The shim reads the file itself now, and says what OpenSSH says.
    out.expect_error(
        255,
        "Can't open user config file /nonexistent/config: No such file or directory",
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn proxy_command_from_the_ssh_config() {
    require_sshd();
    require("ssh");
    let sshd = Sshd::start();
    // OpenSSH's own client, reading the same file, is the proxy: `-W`
    // forwards its stdin and stdout to the target's port.
    let ssh = which("ssh").unwrap();
    let cfg = format!(
        "{}{}{}{}",
        sshd.config_block("target", ""),
        sshd.config_block(
            "behind",
            &format!(
                "  ProxyCommand {} -F {} -o BatchMode=yes -W %h:%p target\n",
                ssh.display(),
                sshd.ssh_config()
            )
        ),
        sshd.config_block("silent", "  ProxyCommand sleep 60\n  ConnectTimeout 2\n"),
        sshd.config_block("failing", "  ProxyCommand false\n"),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let via = |alias: &str| {
        fakessh(&[
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            &format!("ssh:{alias}"),
            "--",
            "ssh",
            "h",
            "echo proxied",
        ])
    };
    let out = via("behind");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "proxied\n");
    // Two logins: OpenSSH's for the proxy, then ours through it.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
    // A proxy that never speaks is given up on after ConnectTimeout; one
    // that dies at once fails at once. Both name the hop.
    via("silent").expect_error(255, "ssh:silent: no ssh handshake from 127.0.0.1 within 2s");
    via("failing").expect_error(255, "ssh:failing: ssh handshake failed");
}

/// A key the server does not list, certified by a CA it trusts
/// (TrustedUserCAKeys): offered with its `KEY-cert.pub`, as OpenSSH does,
/// or with a certificate named by CertificateFile.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn user_certificates_log_in() {
    require_sshd();
    require("ssh-keygen");
    let keys = Sshd::start();
    let ca = keys.path("user_ca");
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "user-ca",
        "-f",
        ca.to_str().unwrap(),
    ]);
    let sshd = Sshd::start_sharing(
        &keys,
        &[&format!(
            "TrustedUserCAKeys={}",
            keys.path("user_ca.pub").display()
        )],
    );
    let key = sshd.path("certified_key");
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
    let sign = |public: &std::path::Path| {
        keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "test-user",
            "-n",
            "root",
            public.to_str().unwrap(),
        ])
    };
    sign(&sshd.path("certified_key.pub"));
    let cfg = sshd.config_block_with_keys("target", "root", &[&key], "");
    std::fs::write(sshd.path("ssh_config"), &cfg).unwrap();
    let out = to_target(&sshd, "ssh h echo certified-user");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "certified-user\n");
    assert!(
        sshd.log().contains("Accepted certificate ID \"test-user\""),
        "{}",
        sshd.log()
    );
    // The certificate elsewhere, named by CertificateFile.
    let elsewhere = sshd.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(
        sshd.path("certified_key-cert.pub"),
        elsewhere.join("cert.pub"),
    )
    .unwrap();
    to_target(&sshd, "true").expect_error(255, "authentication failed");
    let cfg = sshd.config_block_with_keys(
        "target",
        "root",
        &[&key],
        &format!(
            "  CertificateFile {}\n",
            elsewhere.join("cert.pub").display()
        ),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // The certificate held by ssh-agent, with its key.
    require("ssh-agent");
    require("ssh-add");
    std::fs::copy(
        elsewhere.join("cert.pub"),
        sshd.path("certified_key-cert.pub"),
    )
    .unwrap();
    let agent = TestAgent::start(sshd.path("agent.sock"), &[&key]);
    std::fs::write(sshd.path("ssh_config"), config_without_key_files(&sshd)).unwrap();
    let before = sshd.log().matches("Accepted certificate").count();
    let out = agent.run(&sshd, "echo agent-certificate");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "agent-certificate\n");
    // sshd logs the certificate at the probe and again at the login.
    assert!(sshd.log().matches("Accepted certificate").count() > before);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn proxy_jump_from_the_ssh_config() {
    require_sshd();
    let sshd = Sshd::start();
    // The jump host is the same sshd under another name; the target is only
    // named through it (direct-tcpip), like OpenSSH's -J.
    let cfg = format!(
        "{}{}",
        sshd.config_block("jump", ""),
        sshd.config_block("behind", "  ProxyJump jump\n")
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:behind",
        "--",
        "ssh",
        "h",
        "echo jumped",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "jumped\n");
    // Two logins: the jump host and, through it, the target.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
}

/// An ssh-agent on a socket of its own, holding `keys`; killed on drop.
struct TestAgent {
    sock: std::path::PathBuf,
}

impl TestAgent {
    fn start(sock: std::path::PathBuf, keys: &[&std::path::Path]) -> TestAgent {
        let st = Command::new("ssh-agent")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let agent = TestAgent { sock };
        for key in keys {
            // ssh-add also loads KEY-cert.pub when it lies next to KEY.
            let st = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.sock)
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
        }
        agent
    }

    /// `--to ssh:target -- ssh h COMMAND` with this agent (and only it).
    fn run(&self, sshd: &Sshd, command: &str) -> Outcome {
        let mut cmd = Command::new(bin());
        cmd.args([
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
            "--",
        ])
        .args(["ssh", "h", command])
        .env("SSH_AUTH_SOCK", &self.sock);
        run_with(cmd, b"", Duration::from_secs(60))
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let pattern = format!("ssh-agent -a {}", self.sock.display());
        let _ = Command::new("pkill").args(["-f", &pattern]).status();
    }
}

/// The "target" config block with an IdentityFile that does not exist
/// (so the default key files are not tried either): only an agent can log
/// in.
fn config_without_key_files(sshd: &Sshd) -> String {
    sshd.config_block("target", "").replace(
        &format!("  IdentityFile {}\n", sshd.path("user_key").display()),
        &format!("  IdentityFile {}\n", sshd.path("no_such_key").display()),
    )
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn ssh_agent_authentication() {
    require_sshd();
    require("ssh-agent");
    require("ssh-add");
    let sshd = Sshd::start();
    let agent = TestAgent::start(sshd.path("agent.sock"), &[&sshd.path("user_key")]);
    std::fs::write(sshd.path("ssh_config"), config_without_key_files(&sshd)).unwrap();
    let out = agent.run(&sshd, "echo via-agent");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "via-agent\n");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn silent_link_loss_is_noticed_within_the_keepalive_bound() {
    require_sshd();
    let sshd = Sshd::start();
    let proxy = common::proxy::PausableProxy::start(sshd.port);
    let key_line = sshd
        .host_key_line()
        .replace(&format!(":{} ", sshd.port), &format!(":{} ", proxy.port));
    std::fs::write(sshd.path("known_hosts"), key_line).unwrap();
    let cfg = sshd
        .config_block(
            "flaky",
            "  ServerAliveInterval 1\n  ServerAliveCountMax 2\n",
        )
        .replace(
            &format!("Port {}", sshd.port),
            &format!("Port {}", proxy.port),
        );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out_path = sshd.path("out");
    let host = Command::new(bin())
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:flaky",
            "--",
            "sh",
            "-c",
        ])
        .arg("ssh h 'echo started; sleep 120'; echo shim=$?")
        .env_remove("SSH_AUTH_SOCK")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(sshd.path("err")).unwrap())
        .spawn()
        .unwrap();
    let mut host = KillOnDrop(host);
    let start = Instant::now();
    while !std::fs::read_to_string(&out_path)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "session never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.pause();
    let paused_at = Instant::now();
    let status = loop {
        if let Some(st) = host.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            paused_at.elapsed() < Duration::from_secs(30),
            "the dead link was not noticed within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = paused_at.elapsed();
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(sshd.path("err")).unwrap();
    assert!(
        status.success(),
        "the wrapped sh exits 0 after echoing: {out} {err}"
    );
    assert!(out.contains("shim=255"), "{out}");
    assert!(err.contains("ssh:flaky: connection lost"), "{err}");
    eprintln!("dead link noticed after {elapsed:?}");
}
