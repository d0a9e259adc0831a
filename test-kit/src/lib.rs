//! What the end-to-end tests (`fakessh/tests/`) and the bench (`bench/`)
//! share: a real sshd on loopback ([`sshd`]), commands run with a deadline
//! (a hang is a failure, never a stuck CI), the real tools and accounts a
//! test needs, file trees to copy and compare, and the fixtures of a few
//! tests (network namespaces, chroots, a proxy that can go silent).
//!
//! Dev-only (`publish = false`): it panics with a message where a test
//! should fail.

pub mod accounts;
pub mod chroot;
pub mod netns;
mod outcome;
pub mod proxy;
pub mod sshd;
mod tree;

pub use accounts::{
    DEPLOY_PASSWORD, LECTURED_PASSWORD, SU_PASSWORD, password_file, require_account,
    require_accounts,
};
pub use outcome::{Outcome, fakessh_command, run_fakessh, run_with};
pub use tree::{AWKWARD_NAMES, assert_same_tree, make_tree, write_random_file};

use std::path::{Path, PathBuf};

/// The workspace the kit belongs to: where the tests and the bench find
/// the build (`target/`) and the scripts (`./install`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-kit sits in the workspace")
        .to_path_buf()
}

/// The static agent `./build-agents MACHINE` built; it must be there.
pub fn static_agent(machine: &str) -> PathBuf {
    let agent = workspace().join(format!("target/agents/linux-{machine}/mitogen-fakessh"));
    assert!(
        agent.is_file(),
        "{} is missing: run ./build-agents {machine} (./tests/run does)",
        agent.display()
    );
    agent
}

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

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}
