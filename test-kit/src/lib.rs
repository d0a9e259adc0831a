//! What the end-to-end tests (`fakessh/tests/`) and the bench (`bench/`)
//! share: a real sshd on loopback ([`sshd`]), commands run with a deadline
//! (a hang is a failure, never a stuck CI), the real tools and accounts a
//! test needs, file trees to copy and compare, and the fixtures of a few
//! tests (network namespaces, chroots, a proxy that can go silent).
//!
//! Dev-only (`publish = false`): it panics with a message where a test
//! should fail.

pub mod chroot;
pub mod netns;
mod outcome;
pub mod proxy;
pub mod sshd;
mod tree;

pub use outcome::{Outcome, fakessh_command, run_fakessh, run_with};
pub use tree::{AWKWARD_NAMES, assert_same_tree, make_tree, write_random_file};

use std::path::PathBuf;
use std::process::Command;

/// `tool` must be on PATH: a test never passes without the program it runs.
/// `./tests/run` installs every tool the tests use.
pub fn require(tool: &str) {
    assert!(
        which(tool).is_some(),
        "this test runs `{tool}`, which is not installed: run ./tests/run (as root), which installs it"
    );
}

/// We must be root (the tests that need it are `#[ignore]`d, so plain
/// `cargo test` does not run them; `./tests/run` does, as root).
pub fn require_root() {
    assert!(
        sshd::is_root(),
        "this test needs root: run ./tests/run as root"
    );
}

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

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}
