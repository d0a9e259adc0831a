//! The sudo hop against sudo-rs, the Rust sudo (Ubuntu's default from
//! 25.10), in the remote's place: sshd runs in a mount namespace of its own
//! where the real sudo-rs binary (.ci/install-sudo-rs, setuid root) is bound
//! over /usr/bin/sudo and a test sudoers over /etc/sudoers; the machine's own
//! sudo and sudoers stay as they are. sudo-rs wraps our `-p` prompt as
//! `[sudo: PROMPT] Password: ` and warns about sudoers settings it does not
//! know (`requiretty`) before it asks.
//!
//! And a "sudo" we never met, a script in the same place that prompts in a
//! way nobody knows and waits forever: the hop fails within its limit with
//! a message naming the hop, the step and what the program printed.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::sshd::{Sshd, require_sshd};
use common::*;

const SUDO_RS: &str = "/opt/sudo-rs/bin/sudo";

/// mfs-deploy's rules as .ci/accounts.sh writes them for sudo 1.9
/// (requiretty, which sudo-rs warns it does not know), with no cached
/// credentials, so every hop asks.
const PASSWORD_RULES: &str = "Defaults:mfs-deploy requiretty\n\
     Defaults:mfs-deploy use_pty\n\
     Defaults:mfs-deploy passwd_tries=3\n\
     Defaults:mfs-deploy timestamp_timeout=0\n\
     mfs-deploy ALL=(ALL:ALL) ALL\n";

const NOPASSWD_RULES: &str = "Defaults:mfs-deploy requiretty\n\
     Defaults:mfs-deploy timestamp_timeout=0\n\
     mfs-deploy ALL=(ALL:ALL) NOPASSWD: ALL\n";

fn require_sudo_rs() {
    require_root();
    let meta = std::fs::metadata(SUDO_RS).unwrap_or_else(|e| {
        panic!("{SUDO_RS}: {e}: run .ci/install-sudo-rs as root (tests/run does)")
    });
    assert!(
        meta.uid() == 0 && meta.mode() & 0o4000 != 0,
        "{SUDO_RS} is not setuid root: run .ci/install-sudo-rs as root"
    );
    let version = Command::new(SUDO_RS).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("sudo-rs 0.2."),
        "{SUDO_RS} is not sudo-rs 0.2: {version:?}"
    );
}

/// A remote reached as `ssh:target` (mfs-deploy) whose `sudo` is
/// `program` and whose /etc/sudoers says `rules`.
struct Remote {
    sshd: Sshd,
    /// The sudoers file and any program bound in: kept while sshd runs.
    _files: tempfile::TempDir,
}

impl Remote {
    /// sudo-rs as the remote's sudo.
    fn sudo_rs(rules: &str) -> Remote {
        Remote::start(private_dir(), Path::new(SUDO_RS), rules)
    }

    /// A script with this text as the remote's sudo.
    fn with_script(script: &str) -> Remote {
        let files = private_dir();
        let program = files.path().join("sudo");
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, PermissionsExt::from_mode(0o755)).unwrap();
        Remote::start(files, &program, PASSWORD_RULES)
    }

    fn start(files: tempfile::TempDir, program: &Path, rules: &str) -> Remote {
        let sudoers = files.path().join("sudoers");
        std::fs::write(&sudoers, rules).unwrap();
        std::fs::set_permissions(&sudoers, PermissionsExt::from_mode(0o440)).unwrap();
        let sshd = Sshd::start_with_mounts(&format!(
            "mount --bind '{}' /usr/bin/sudo; mount --bind '{}' /etc/sudoers",
            program.display(),
            sudoers.display()
        ));
        sshd.write_config_for("target", "mfs-deploy");
        Remote {
            sshd,
            _files: files,
        }
    }

    fn ssh_config(&self) -> String {
        self.sshd.ssh_config()
    }
}

/// A directory root owns, others may only read and search (the remote's
/// programs run as mfs-deploy read from it).
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// mitogen-fakessh with no terminal (setsid), so a password it was not
/// given cannot be asked for.
fn fakessh_without_terminal(args: &[&str]) -> Outcome {
    require("setsid");
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg(bin())
        .args(args)
        .env_remove("SSH_AUTH_SOCK");
    run_with(cmd, b"", Duration::from_secs(180))
}

#[test]
#[ignore = "needs root, sshd, the test accounts, mount namespaces and sudo-rs (run ./tests/run)"]
fn sudo_rs_with_a_password_carries_rsync_scp_and_sftp_as_root() {
    require_sshd();
    require_accounts();
    require_sudo_rs();
    require("rsync");
    require("scp");
    require("sftp");
    let remote = Remote::sudo_rs(PASSWORD_RULES);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 4 << 20);
    let dst = root_only_dir(tmp.path());
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    // The remote's sudo is sudo-rs (asked through the hop itself), then
    // rsync, scp (SFTP and -O) and sftp as root.
    let copies = ClientCopies::new(
        &src,
        &dst,
        tmp.path(),
        "ssh target 'sudo --version' | head -n 1; ",
    );
    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
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
        out.stdout_text().starts_with("sudo-rs 0.2."),
        "the remote's sudo is not sudo-rs: {}",
        out.stdout_text()
    );
    assert!(
        out.stdout_text().ends_with("\nroot\n"),
        "{}",
        out.stdout_text()
    );
    assert!(!out.stderr_text().contains(DEPLOY_PASSWORD));
    assert_eq!(std::fs::metadata(dst.join("tree/a")).unwrap().uid(), 0);
    copies.assert_arrived_as(0);
}

#[test]
#[ignore = "needs root, sshd, the test accounts, mount namespaces and sudo-rs (run ./tests/run)"]
fn sudo_rs_nopasswd_needs_no_password() {
    require_sshd();
    require_accounts();
    require_sudo_rs();
    let remote = Remote::sudo_rs(NOPASSWD_RULES);
    // No password file and no terminal: a prompt would fail the hop.
    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
        "--to",
        "ssh:target,sudo:root",
        "--",
        "ssh",
        "h",
        "id -un; sudo --version | head -n 1",
    ]);
    out.assert_no_panic().expect_code(0);
    assert!(
        out.stdout_text().starts_with("root\nsudo-rs 0.2."),
        "{}",
        out.stdout_text()
    );
}

#[test]
#[ignore = "needs root, sshd, the test accounts, mount namespaces and sudo-rs (run ./tests/run)"]
fn sudo_rs_wrong_or_missing_password_fails_clearly() {
    require_sshd();
    require_accounts();
    require_sudo_rs();
    let remote = Remote::sudo_rs(PASSWORD_RULES);
    let tmp = tempfile::tempdir().unwrap();
    let bad = password_file(tmp.path(), "definitely-wrong");
    let victim = tmp.path().join("should-not-exist");
    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
        "--password-file",
        &bad,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "touch",
        &victim.display().to_string(),
    ]);
    out.assert_no_panic().expect_code(255);
    assert!(
        out.stderr_text()
            .contains("sudo:root on ssh:target: incorrect password"),
        "{}",
        out.stderr_text()
    );
    assert!(!out.stderr_text().contains("definitely-wrong"));
    assert!(!victim.exists(), "the command ran with a wrong password");

    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
        "--to",
        "ssh:target,sudo:root",
        "--",
        "touch",
        &victim.display().to_string(),
    ]);
    out.assert_no_panic().expect_code(255);
    assert!(
        out.stderr_text().contains("a password is required")
            && out.stderr_text().contains("--password-file"),
        "{}",
        out.stderr_text()
    );
    assert!(!victim.exists(), "the command ran without a password");
}

/// A "sudo" nobody knows: its prompt is neither ours nor a `password:`
/// one, its title escape is remote text, and it waits forever.
const UNKNOWN_PROMPT: &str = "#!/bin/sh\n\
     printf 'checking token...\\n\\033]0;owned\\007Unlock token 7 (PIN) > ' >&2\n\
     exec sleep 100000\n";

/// A "sudo" that prints our prompt, reads the password from its terminal
/// and never answers.
const NEVER_ANSWERS: &str = "#!/bin/sh\n\
     while [ $# -gt 0 ]; do [ \"$1\" = -p ] && { prompt=$2; shift; }; shift; done\n\
     printf '%s' \"$prompt\" >&2\n\
     read -r answer < /dev/tty\n\
     exec sleep 100000\n";

#[test]
#[ignore = "needs root, sshd, the test accounts and mount namespaces (run ./tests/run)"]
fn a_sudo_we_never_met_fails_within_its_limit_saying_what_it_printed() {
    require_sshd();
    require_accounts();
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path(), DEPLOY_PASSWORD);
    let victim = tmp.path().join("should-not-exist");
    let touch = victim.display().to_string();

    let remote = Remote::with_script(UNKNOWN_PROMPT);
    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
        "--password-file",
        &pw,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "touch",
        &touch,
    ]);
    out.assert_no_panic().expect_code(255);
    let said = out.stderr_text();
    eprintln!("{said}");
    assert!(
        said.contains(
            "sudo:root on ssh:target: sudo neither asked for a password nor started the shell \
             within 30s; last seen on its terminal: \"checking token... | \\033]0;owned\\007Unlock token 7 (PIN) >\""
        ),
        "{said}"
    );
    assert!(
        !said.contains('\x1b'),
        "a remote escape reached the terminal"
    );
    assert!(!said.contains(DEPLOY_PASSWORD));
    assert!(!victim.exists());
    drop(remote);

    let remote = Remote::with_script(NEVER_ANSWERS);
    let out = fakessh_without_terminal(&[
        "--ssh-config",
        &remote.ssh_config(),
        "--password-file",
        &pw,
        "--to",
        "ssh:target,sudo:root",
        "--",
        "touch",
        &touch,
    ]);
    out.assert_no_panic().expect_code(255);
    let said = out.stderr_text();
    eprintln!("{said}");
    assert!(
        said.contains(
            "sudo:root on ssh:target: sudo neither accepted nor refused the password within 30s; \
             last seen on its terminal: \"mitogen-fakessh-password-"
        ),
        "{said}"
    );
    assert!(!said.contains(DEPLOY_PASSWORD), "{said}");
    assert!(!victim.exists());
}
