//! ssh_config(5), read as OpenSSH 10.2 reads it: every keyword of its
//! `readconf.c` is known (`tests/openssh_10.rs` holds them all, and the
//! end-to-end `config_keywords` tests run them against a real sshd).
//!
//! - [`algorithms`]: the crypto policy (KexAlgorithms, Ciphers, MACs...);
//! - [`split`]: a line into its keyword and words (quotes, escapes, comments);
//! - [`keywords`]: every keyword OpenSSH knows, and what we do with it;
//! - `file`: files and `Include`s into lines under their `Host`/`Match` blocks;
//! - `matching`: `Host` patterns and `Match` criteria;
//! - `session`: the session a destination is resolved for (`Match command`,
//!   `Match sessiontype`);
//! - [`tokens`]: `%` tokens and `${VAR}`;
//! - [`names`]: the host and user names OpenSSH accepts on its command line;
//! - [`options`]: `-o` options, checked;
//! - `obtain`: the lines one destination obtains: `Match host` sees the
//!   `HostName` set so far, and `Match final` blocks get a second pass;
//! - `resolve`: loading files, and the settings one destination gets
//!   (`host_config`): for each keyword the first value obtained wins;
//! - [`print`]: `ssh -G`.

pub mod algorithms;
mod error;
mod file;
#[doc(hidden)]
pub mod fuzzing;
mod host_config;
pub mod keywords;
mod matching;
pub mod names;
mod obtain;
pub mod options;
mod paths;
mod policy;
pub mod print;
mod resolve;
mod session;
pub mod split;
pub mod tokens;

pub use error::{ConfigError, LineProblem, Place};
pub use host_config::{HostConfig, StrictHostKeyChecking};
pub use matching::{OPENSSH_VERSION, host_in_pattern_list};
pub use names::{valid_hostname, valid_user};
pub use paths::{home_dir, local_user};
pub use resolve::SshConfig;
pub use session::{SessionAsked, SessionType};
