//! The part of ssh_config(5) that a connection needs.
//!
//! OpenSSH semantics: files are read top to bottom, following `Include`
//! ([`file`]); a `Host` or `Match` line opens a block that applies when its
//! condition holds ([`matching`]); for each keyword the first value obtained
//! wins. `Match host` sees the `HostName` set so far, and `Match final`
//! blocks get a second pass, as in OpenSSH. Keywords we do not use are
//! ignored.

mod error;
mod file;
mod matching;
mod paths;
mod resolve;

pub use error::ConfigError;
pub use matching::host_in_pattern_list;
pub use paths::{home_dir, local_user};
pub use resolve::{HostConfig, SshConfig, StrictHostKeyChecking};
