//! The test kit (`test-kit/`), and the binary under test.
#![allow(dead_code)]

use std::path::Path;

pub mod rogue;

pub use test_kit::*;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mitogen-fakessh")
}

/// `mitogen-fakessh ARGS...` with empty stdin and a deadline, without
/// ssh-agent or terminal (`test_kit::run_fakessh`).
pub fn fakessh(args: &[&str]) -> Outcome {
    run_fakessh(Path::new(bin()), args)
}

/// `mitogen-fakessh --to local -- sh -c SCRIPT`.
pub fn local_sh(script: &str) -> Outcome {
    fakessh(&["--to", "local", "--", "sh", "-c", script])
}
