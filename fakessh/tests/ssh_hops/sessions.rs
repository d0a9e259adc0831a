//! Sessions over one ssh connection: rsync both ways, fifty sessions on one
//! connection, the agent cache, rekeys (ours past 1 GiB and the server's),
//! cleanup when the host is killed, and a link that goes silent.

use super::*;

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
