//! The agent reaches accounts unlike root's, through a real sshd: login
//! shells that are not sh (tcsh, fish, zsh, ksh, dash), service accounts
//! behind sudo whose home is missing and whose shell refuses logins, a
//! cache directory on a noexec mount (and every place noexec), and uploads
//! that arrive corrupted or cut short.
#![cfg(feature = "host")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

/// `mitogen-fakessh -v --ssh-config CFG [--to CHAIN] -- ARGS...`.
fn fakessh_v(cfg: &str, chain: Option<&str>, args: &[&str]) -> Outcome {
    let mut all = vec!["-v", "--ssh-config", cfg];
    if let Some(chain) = chain {
        all.extend(["--to", chain]);
    }
    all.push("--");
    all.extend(args);
    fakessh(&all)
}

/// A directory `user` owns, under a temporary one everybody can enter.
fn owned_dir(user: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("owned");
    std::fs::create_dir(&dir).unwrap();
    let uid = uid_of(user);
    std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
    (tmp, dir)
}

#[test]
#[ignore = "needs root, sshd, tcsh, fish, zsh, ksh, dash and their accounts (run ./tests/run)"]
fn any_login_shell_runs_the_bootstrap_and_commands_as_openssh_does() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    for (user, shell) in [
        ("mfs-tcsh", "tcsh"),
        ("mfs-fish", "fish"),
        ("mfs-zsh", "zsh"),
        ("mfs-ksh", "ksh"),
        ("mfs-dash", "dash"),
    ] {
        require(shell);
        require_account(user);
        let cfg = sshd.path(&format!("{user}.config"));
        std::fs::write(&cfg, sshd.config_block_for("h", user, "")).unwrap();
        let cfg = cfg.display().to_string();
        // The remote command goes through the login shell, as with sshd:
        // the same words print the same through OpenSSH and through us.
        let words = "echo $SHELL; echo 'single quotes' \"double\"";
        let ours = fakessh_v(&cfg, None, &["ssh", "h", words]);
        ours.assert_no_panic().expect_code(0);
        let theirs = run_with(
            {
                let mut c = Command::new("ssh");
                c.args(["-F", &cfg, "h", words]);
                c
            },
            b"",
            Duration::from_secs(60),
        );
        theirs.expect_code(0);
        assert_eq!(ours.stdout_text(), theirs.stdout_text(), "{user}");
        assert!(ours.stdout_text().contains(shell), "{}", ours.stdout_text());
        if matches!(shell, "tcsh" | "fish") {
            let (_keep, dst) = owned_dir(user);
            fakessh_v(
                &cfg,
                None,
                &[
                    "rsync",
                    "-a",
                    &format!("{}/", src.display()),
                    &format!("h:{}/", dst.display()),
                ],
            )
            .assert_no_panic()
            .expect_code(0);
            assert_same_tree(&src, &dst);
        }
    }
}

/// Remove the agent places of `user` outside any home, so that its next
/// bootstrap starts cold.
fn forget_agents_of(user: &str) {
    let uid = uid_of(user);
    for base in ["/dev/shm", "/tmp", "/var/tmp"] {
        let _ = std::fs::remove_dir_all(format!("{base}/mitogen-fakessh-{uid}"));
    }
}

#[test]
#[ignore = "needs root, sshd and the www-data and nobody accounts (run ./tests/run)"]
fn service_accounts_behind_sudo() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    let cfg = sshd.ssh_config();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    for user in ["www-data", "nobody"] {
        require_account(user);
        forget_agents_of(user);
        let chain = format!("ssh:target,sudo:{user}");
        let who = fakessh_v(&cfg, Some(&chain), &["ssh", "h", "id -un"]);
        who.assert_no_panic().expect_code(0);
        assert_eq!(who.stdout_text(), format!("{user}\n"));
        // Its home is missing or not its own: the agent went elsewhere.
        let uid = uid_of(user);
        who.expect_stderr(&format!("agent stored in /dev/shm/mitogen-fakessh-{uid}"));
        let (_keep, dst) = owned_dir(user);
        fakessh_v(
            &cfg,
            Some(&chain),
            &[
                "rsync",
                "-a",
                &format!("{}/", src.display()),
                &format!("h:{}/", dst.display()),
            ],
        )
        .assert_no_panic()
        .expect_code(0);
        assert_same_tree(&src, &dst);
        forget_agents_of(user);
    }
}

/// sshd in a mount namespace of its own, where `script` (sh, as root)
/// mounted what the test needs before sshd started; logins as
/// mfs-deploy, named `h`.
fn sshd_with_mounts(script: &str) -> Sshd {
    let sshd = Sshd::start_with_mounts(script);
    sshd.write_config_for("h", "mfs-deploy");
    sshd
}

/// mfs-deploy's agent cache directory, created and owned.
fn deploy_cache() -> String {
    let dir = "/home/mfs-deploy/.cache/mitogen-fakessh";
    std::fs::create_dir_all(dir).unwrap();
    let uid = uid_of("mfs-deploy");
    for d in ["/home/mfs-deploy/.cache", dir] {
        std::os::unix::fs::chown(d, Some(uid), Some(uid)).unwrap();
    }
    dir.to_string()
}

#[test]
#[ignore = "needs root, sshd, mount namespaces and the mfs-deploy account (run ./tests/run)"]
fn a_noexec_cache_is_passed_over_and_all_noexec_is_named() {
    require_sshd();
    require_accounts();
    require("unshare");
    let cache = deploy_cache();
    let uid = uid_of("mfs-deploy");
    let noexec =
        |dir: &str| format!("mount -t tmpfs -o noexec,mode=0700,uid={uid},gid={uid} tmpfs {dir}");

    // The cache on a noexec tmpfs, a clean /dev/shm: the agent goes there.
    let sshd = sshd_with_mounts(&format!(
        "{}; mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
        noexec(&cache)
    ));
    let out = fakessh_v(&sshd.ssh_config(), Some("ssh:h"), &["ssh", "h", "echo hi"]);
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "hi\n");
    out.expect_stderr(&format!("agent stored in /dev/shm/mitogen-fakessh-{uid}"));
    drop(sshd);

    // Every place noexec: the error names each, and what to do.
    let tmp_place = format!("/tmp/mitogen-fakessh-{uid}");
    std::fs::create_dir_all(&tmp_place).unwrap();
    std::os::unix::fs::chown(&tmp_place, Some(uid), Some(uid)).unwrap();
    let sshd = sshd_with_mounts(&format!(
        "{}; mount -t tmpfs -o noexec,mode=1777 tmpfs /dev/shm; {}; mount -t tmpfs -o noexec,mode=1777 tmpfs /var/tmp",
        noexec(&cache),
        noexec(&tmp_place)
    ));
    let out = fakessh_v(&sshd.ssh_config(), Some("ssh:h"), &["ssh", "h", "echo hi"]);
    out.assert_no_panic()
        .expect_error(255, "ssh:h: the agent cannot run in any place tried:");
    for place in [
        cache.clone(),
        format!("/dev/shm/mitogen-fakessh-{uid}"),
        tmp_place.clone(),
        format!("/var/tmp/mitogen-fakessh-{uid}"),
    ] {
        out.expect_stderr(&format!("{place} (cannot execute there)"));
    }
    out.expect_stderr("set one with --agent-dir DIR");

    // --agent-dir names a place that works.
    let chosen = "/home/mfs-deploy/.mitogen-fakessh-agents";
    let _ = std::fs::remove_dir_all(chosen);
    let out = fakessh(&[
        "-v",
        "--ssh-config",
        &sshd.ssh_config(),
        "--agent-dir",
        chosen,
        "--to",
        "ssh:h",
        "--",
        "ssh",
        "h",
        "echo hi",
    ]);
    out.assert_no_panic().expect_code(0);
    out.expect_stderr(&format!("agent stored in {chosen}"));
    let _ = std::fs::remove_dir_all(chosen);
    let _ = std::fs::remove_dir_all(&tmp_place);
}

/// The names in the remote cache that are neither the agent nor its
/// marker (temporary files), once the remote side has had time to clean.
fn leftovers(cache: &Path) -> Vec<String> {
    let start = Instant::now();
    loop {
        let names: Vec<String> = std::fs::read_dir(cache)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.') && !n.starts_with(".ok-"))
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return names;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn corrupted_and_truncated_uploads_are_caught_by_the_checksum() {
    require_sshd();
    let sshd = Sshd::start();
    let run = |hook: &str| {
        let _ = std::fs::remove_dir_all(sshd.path("cache"));
        let mut cmd = Command::new(bin());
        cmd.args([
            "-v",
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
            "--",
            "ssh",
            "h",
            "echo hi",
        ])
        .env("MITOGEN_FAKESSH_TEST_CORRUPT_UPLOADS", hook)
        .env_remove("SSH_AUTH_SOCK");
        run_with(cmd, b"", Duration::from_secs(120))
    };
    // Once: asked again, and it runs.
    let once = run("1");
    once.assert_no_panic().expect_code(0);
    assert_eq!(once.stdout_text(), "hi\n");
    assert_eq!(once.stderr_text().matches("uploading agent").count(), 2);
    // Twice: a clear error, nothing half-written left.
    run("2").assert_no_panic().expect_error(
        255,
        "ssh:target: the agent arrived corrupted twice (checksum mismatch)",
    );
    assert_eq!(leftovers(&sshd.cache_dir()), Vec::<String>::new());
    assert!(
        std::fs::read_dir(sshd.cache_dir())
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "a corrupted agent was kept"
    );
    // Cut short: the upload fails, the remote cleans up.
    run("truncate")
        .assert_no_panic()
        .expect_error(255, "ssh:target: agent image upload failed");
    assert_eq!(leftovers(&sshd.cache_dir()), Vec::<String>::new());
}
