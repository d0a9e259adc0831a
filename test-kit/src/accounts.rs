//! The test accounts `.ci/accounts.sh` creates, their passwords (test
//! fixtures, set there too), and password files for `--password-file`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::needs::require_root;

/// mfs-deploy's login and sudo password.
pub const DEPLOY_PASSWORD: &str = "deploy-pw-4711";
/// mfs-su's password (a su target).
pub const SU_PASSWORD: &str = "su-pw-0815";
/// mfs-lectured's password (sudo with a lecture).
pub const LECTURED_PASSWORD: &str = "lectured-pw-2718";

/// Local account `user` must exist (`.ci/accounts.sh` creates the test
/// accounts), and we must be root to use it.
pub fn require_account(user: &str) {
    require_root();
    let exists = Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        exists,
        "account {user} is missing: run ./tests/run as root (it runs .ci/accounts.sh)"
    );
}

/// The accounts of `.ci/accounts.sh`.
pub fn require_accounts() {
    for user in ["mfs-deploy", "mfs-webapp", "mfs-su"] {
        require_account(user);
    }
}

/// The uid of a local account.
pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(out.status.success(), "no account {user}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A file in `dir` holding `text` and a newline, readable by its owner only
/// (mitogen-fakessh refuses a password file others can read); its path.
pub fn password_file(dir: &Path, text: &str) -> String {
    let path = dir.join(format!("pw-{}", text.len()));
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}
