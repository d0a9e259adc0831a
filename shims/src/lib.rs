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

/// `eprintln!` for a stderr that may be gone: the client that gave it to us
/// may have exited (rsync kills ssh once it has its status), and
/// `eprintln!` panics on a write error, which in a release build aborts.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
