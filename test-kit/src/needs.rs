//! What a test needs: the build it tests, the programs it runs, root.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    assert!(is_root(), "this test needs root: run ./tests/run as root");
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}
