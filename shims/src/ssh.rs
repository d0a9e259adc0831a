//! The `ssh` shim from command line to exit status, as OpenSSH's client
//! would behave.

use std::ffi::OsString;

use crate::argv::{self, USAGE};
use crate::log::Log;
use crate::out::say;
use crate::stdio::{Handover, StdinSource};
use crate::{config, request, session, terminal};

/// Run the ssh shim on `args` (argv without argv\[0\]); returns the exit
/// status, as OpenSSH's client would.
pub fn run_ssh(args: &[OsString]) -> i32 {
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
    let cfg = match config::resolve(&inv) {
        Ok(cfg) => cfg,
        Err(e) => {
            say!("{e}");
            return 255;
        }
    };
    if inv.print_config {
        config::print(&cfg);
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
    let request = match request::build(&inv, &cfg, &log) {
        Ok(r) => r,
        Err(e) => {
            say!("{e}");
            return 255;
        }
    };
    log.debug(&format!(
        "opening session to {} for {}",
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
