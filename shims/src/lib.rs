//! The short-lived client side of mitogen-fakessh: what runs when the wrapped
//! command executes `ssh`, `scp` or `sftp`.
//!
//! - [`argv`] parses an OpenSSH command line exactly as OpenSSH's getopt does;
//! - [`request`] turns it into the session request (command, pty, env);
//! - [`control`] finds the host and hands it a fresh session socket;
//! - [`session`] drives the client end of the session protocol over it;
//! - [`trust`] checks a socket path and its listener before believing it;
//! - [`wrap`] runs the real `scp`/`sftp` with `-S` pointing at our `ssh`.

pub mod argv;
mod config;
pub mod control;
pub mod env;
pub mod error;
pub mod forward;
mod link;
mod log;
mod out;
mod request;
mod session;
mod signals;
mod ssh;
mod stdio;
mod sys;
mod terminal;
pub mod trust;
pub mod wrap;

pub use error::ShimError;
pub use ssh::run_ssh;

/// For the host's own sockets on macOS (see `sys`).
#[cfg(not(target_os = "linux"))]
pub use sys::no_sigpipe;
