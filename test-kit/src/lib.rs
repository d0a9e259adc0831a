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
mod copies;
mod needs;
pub mod netns;
mod outcome;
pub mod proxy;
pub mod sshd;
mod tree;

pub use accounts::{
    DEPLOY_PASSWORD, LECTURED_PASSWORD, SU_PASSWORD, password_file, require_account,
    require_accounts, uid_of,
};
pub use copies::ClientCopies;
pub use needs::{is_root, require, require_root, static_agent, which, workspace};
pub use outcome::{Outcome, fakessh_command, run_fakessh, run_with};
pub use tree::{AWKWARD_NAMES, assert_same_tree, make_tree, root_only_dir, write_random_file};
