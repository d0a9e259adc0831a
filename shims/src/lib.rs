//! The short-lived client side of mitogen-fakessh: what runs when the wrapped
//! command executes `ssh`, `scp` or `sftp`.
//!
//! - [`argv`] parses an OpenSSH command line exactly as OpenSSH's getopt does;
//! - [`request`] turns it into the session request (command, pty, env);
//! - [`control`] finds the host and hands it a fresh session socket;
//! - [`session`] drives the client end of the session protocol over it;
//! - [`wrap`] runs the real `scp`/`sftp` with `-S` pointing at our `ssh`.

pub mod argv;
mod config_print;
mod control;
pub mod env;
mod error;
mod log;
mod request;
mod session;
mod signals;
mod stdio;
mod sys;
mod terminal;
pub mod wrap;

pub use error::ShimError;

use argv::USAGE;
use log::Log;
use stdio::{Handover, StdinSource};

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

/// Run the ssh shim on `args` (argv without argv\[0\]); returns the exit
/// status, as OpenSSH's client would.
pub fn run_ssh(args: &[String]) -> i32 {
    let inv = match argv::parse(args) {
        Ok(inv) => inv,
        Err(e) => {
            say!("{e}");
            if e.wants_usage() {
                say!("{USAGE}");
            }
            return 255;
        }
    };
    let log = Log::open(&inv);
    if inv.version {
        say!(
            "mitogen-fakessh {} (ssh shim, OpenSSH-compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    if inv.print_config {
        config_print::print(&inv);
        return 0;
    }
    if let Some(what) = &inv.unsupported {
        say!("ssh: {what} is not supported by mitogen-fakessh");
        return 255;
    }
    for ignored in &inv.ignored {
        log.debug(&format!(
            "option {ignored} has no effect under mitogen-fakessh"
        ));
    }
    let request = match request::build(&inv, &log) {
        Ok(r) => r,
        Err(e) => {
            say!("{e}");
            return 255;
        }
    };
    log.debug(&format!(
        "opening session to {} for {:?}",
        inv.host, request.command
    ));
    let handover = Handover::choose(inv.stdin_null, request.pty.is_some());
    let code = match session::Session::open(&request, handover, &log) {
        Ok(session) => {
            if request.pty.is_some() {
                terminal::enter_raw();
            }
            let stdin = if handover.stdin {
                StdinSource::HandedOver
            } else if inv.stdin_null {
                StdinSource::Null
            } else {
                StdinSource::Pumped
            };
            session.run(stdin, &log)
        }
        Err(e) => {
            say!("ssh: {e}");
            255
        }
    };
    terminal::restore();
    code
}
