//! sudo, su and doas hops under sudo's `requiretty`, with passwords, through
//! a real sshd and locally. The accounts come from `.ci/accounts.sh`.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::sshd::{Sshd, require_sshd};
use common::*;

fn deploy_sshd() -> Sshd {
    let sshd = Sshd::start();
    sshd.write_config_for("target", "mfs-deploy");
    sshd
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn requiretty_defeats_openssh_but_not_us() {
    require_sshd();
    require_accounts();
    require("rsync");
    require("scp");
    require("sftp");
    let sshd = deploy_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 8 << 20);
    let dst = root_only_dir(tmp.path());
    let cfg = sshd.ssh_config();

    // Plain OpenSSH with --rsync-path="sudo rsync": sudo wants a tty.
    let mut plain = Command::new("rsync");
    plain
        .args([
            "-a",
            "-e",
            &format!("ssh -F {cfg}"),
            "--rsync-path=sudo rsync",
        ])
        .arg(format!("{}/", src.display()))
        .arg(format!("target:{}/plain/", dst.display()));
    let out = run_with(plain, b"", Duration::from_secs(60));
    assert_ne!(
        out.code(),
        0,
        "plain rsync through sudo should fail under requiretty"
    );
    assert!(
        out.stderr_text().contains("must have a tty"),
        "{}",
        out.stderr_text()
    );
    assert!(!dst.join("plain").exists());

    // Through ssh:mfs-deploy,sudo:root: rsync, scp (SFTP and -O) and sftp.
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    let copies = ClientCopies::new(&src, &dst, tmp.path(), "");
    let out = fakessh(&[
        "--ssh-config",
        &cfg,
        "--password-file",
        &pw,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "sh",
        "-c",
        &copies.script,
    ]);
    out.assert_no_panic().expect_code(0);
    assert!(
        out.stdout_text().ends_with("root\n"),
        "{}",
        out.stdout_text()
    );
    copies.assert_arrived_as(0);
    assert_eq!(std::fs::metadata(dst.join("tree/a")).unwrap().uid(), 0);
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn non_root_target_owns_what_it_writes() {
    require_sshd();
    require_accounts();
    require("rsync");
    let sshd = deploy_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 0);
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    let dst = format!("/home/mfs-webapp/mfs-test-{}", std::process::id());
    let script = format!("ssh h id -un && rsync -a '{}/' h:'{dst}/'", src.display());
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--password-file",
        &pw,
        "--to",
        "ssh:target,sudo:mfs-webapp",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-webapp\n");
    let owner = std::fs::metadata(format!("{dst}/a/b/c/empty"))
        .unwrap()
        .uid();
    let _ = std::fs::remove_dir_all(&dst);
    assert_eq!(owner, uid_of("mfs-webapp"));
}

#[test]
#[ignore = "needs root and the test accounts (run ./tests/run)"]
fn local_sudo_needs_no_sshd() {
    require_accounts();
    let out = fakessh(&[
        "--to",
        "local,sudo:mfs-webapp",
        "--",
        "ssh",
        "h",
        "id -un; pwd",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-webapp\n/home/mfs-webapp\n");
}

#[test]
#[ignore = "needs root and the test accounts (run ./tests/run)"]
fn su_with_a_password() {
    require_accounts();
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path(), SU_PASSWORD);
    let out = fakessh(&[
        "--password-file",
        &pw,
        "--to",
        "local,sudo:mfs-deploy,su:mfs-su",
        "--",
        "ssh",
        "h",
        "id -un",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-su\n");
    let bad = password_file(tmp.path(), "not-the-password");
    let out = fakessh(&[
        "--password-file",
        &bad,
        "--to",
        "local,sudo:mfs-deploy,su:mfs-su",
        "--",
        "true",
    ]);
    out.expect_code(255);
    assert!(
        out.stderr_text()
            .contains("su:mfs-su on local,sudo:mfs-deploy: incorrect password"),
        "{}",
        out.stderr_text()
    );
    assert!(!out.stderr_text().contains("not-the-password"));
}

#[test]
#[ignore = "needs root and the test accounts (run ./tests/run)"]
fn doas_with_a_password() {
    require_accounts();
    require("doas");
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    let out = fakessh(&[
        "--password-file",
        &pw,
        "--to",
        "local,sudo:mfs-deploy,doas:root",
        "--",
        "ssh",
        "h",
        "id -un",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "root\n");
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn wrong_or_missing_password_fails_fast_and_clearly() {
    require_sshd();
    require_accounts();
    let sshd = deploy_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let bad = password_file(tmp.path(), "definitely-wrong");
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--password-file",
        &bad,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "touch",
        "/nonexistent/should-not-run",
    ]);
    out.expect_code(255);
    assert!(
        out.stderr_text()
            .contains("sudo:root on ssh:target: incorrect password"),
        "{}",
        out.stderr_text()
    );
    // Not a stall either: a hop that waited on would have ended with
    // "... within 30s; last seen on its terminal: ..." instead.
    assert!(!out.stderr_text().contains("definitely-wrong"));

    // No password file and no terminal (setsid detaches it): a clear message.
    require("setsid");
    let mut cmd = Command::new("setsid");
    cmd.args([
        "-w",
        bin(),
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target,sudo:root",
        "--",
        "true",
    ])
    .env_remove("SSH_AUTH_SOCK");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    out.expect_code(255);
    assert!(
        out.stderr_text().contains("a password is required"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text().contains("--password-file"),
        "{}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn the_password_never_leaks() {
    require_sshd();
    require_accounts();
    let sshd = deploy_sshd();
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    let out = fakessh(&[
        "-vvv",
        "--ssh-config",
        &sshd.ssh_config(),
        "--password-file",
        &pw,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "sh",
        "-c",
        "env; ssh h env; ssh h 'cat /proc/$PPID/environ | tr \"\\0\" \"\\n\"; ps -eo args'",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("USER=root"),
        "{}",
        out.stdout_text()
    );
    for (what, text) in [("output", out.stdout_text()), ("log", out.stderr_text())] {
        assert!(
            !text.contains(DEPLOY_PASSWORD),
            "the password appears in the {what}"
        );
    }
}
