//! The short-lived client side of mitogen-fakessh: what runs when the wrapped
//! command executes `ssh`, `scp` or `sftp`.
//!
//! - [`argv`] parses an OpenSSH command line exactly as OpenSSH's getopt does.
//! - [`client`] opens a session through the host and pumps stdio.
//! - [`wrap`] runs the real `scp`/`sftp` with `-S` pointing at our `ssh`.

pub mod argv;
pub mod client;
pub mod env;
mod sys;
mod terminal;
pub mod wrap;
