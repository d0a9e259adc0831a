//! The `ssh` shim from command line to exit status, as OpenSSH's client
//! would behave.

use std::ffi::OsString;

use crate::argv::{self, USAGE};
use crate::log::Log;
use crate::out::say;
use crate::stdio::{Handover, StdinSource};
use std::sync::Arc;

use proto::session::RemoteCommand;

use crate::{config, control, forward, request, session, sys, terminal};

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
    let forwards = match forward::collect(&inv, &cfg) {
        Ok(f) => f,
        Err(e) => {
            say!("{e}");
            return 255;
        }
    };
    let agent = forward::agent_socket(&inv, &cfg);
    let mut request = match request::build(&inv, &cfg, &log) {
        Ok(r) => r,
        Err(e) => {
            say!("{e}");
            return 255;
        }
    };
    // -W: stdin and stdout are one TCP stream from the far side.
    if let Some((host, port)) = &inv.stdio_forward {
        request.command = RemoteCommand::TcpConnect {
            host: host.clone(),
            port: *port,
            greeting: Vec::new(),
        };
        request.pty = None;
    }
    if let Some(command) = inv.master {
        return master_request(request, command, inv.quiet, &log);
    }
    let run_command = !inv.no_command || inv.stdio_forward.is_some();
    request.forward_agent = agent.is_some() && run_command && inv.stdio_forward.is_none();
    if inv.background && !run_command && forwards.is_empty() {
        say!("Cannot fork into background without a command to execute.");
        return 255;
    }
    let log = Arc::new(log);
    // -f: the parent waits until the forwards are up (or failed), then
    // exits; the child carries on in the background.
    let background = match inv.background {
        true => match Background::fork() {
            Ok(Forked::Parent(code)) => return code,
            Ok(Forked::Child(child)) => Some(child),
            Err(e) => {
                say!("ssh: cannot go to the background: {e}");
                return 255;
            }
        },
        false => None,
    };
    let template = forward::connection::Template {
        request: request.clone(),
        log: log.clone(),
    };
    let started = forward::start(&forwards, &template);
    if let Some(child) = background {
        child.done(if started.is_ok() { 0 } else { 255 });
    }
    if started.is_err() {
        return 255;
    }
    if !run_command {
        // -N: nothing to run; serve the forwards while the host lives.
        control::wait_until_host_gone();
        return 0;
    }
    log.debug(&format!(
        "opening session to {} for {}",
        inv.host, request.command
    ));
    let stdin_null = inv.stdin_null || inv.background;
    let handover = Handover::choose(stdin_null, request.pty.is_some());
    let code = match session::Session::open(&request, handover, &log) {
        Ok(mut session) => {
            if request.pty.is_some() {
                terminal::enter_raw();
            }
            if let (true, Some(agent)) = (request.forward_agent, agent) {
                session = session.on_event(forward::remote::take_to(agent, template.clone()));
            }
            if inv.stdio_forward.is_some() {
                session = session.stdio_forward();
            }
            let stdin = if handover.stdin {
                StdinSource::HandedOver
            } else if stdin_null {
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

/// `ssh -O check|exit|stop`: the host answers, as a ControlMaster would,
/// about its context for the destination (its words on our stderr).
fn master_request(
    mut request: proto::session::SessionRequest,
    command: proto::session::MasterCommand,
    quiet: bool,
    log: &Log,
) -> i32 {
    request.command = RemoteCommand::Master { command, quiet };
    request.pty = None;
    request.forward_agent = false;
    match session::Session::open(&request, Handover::choose(true, false), log) {
        Ok(session) => session.run(StdinSource::Null, log),
        Err(e) => {
            say!("ssh: {e}");
            255
        }
    }
}

/// `ssh -f`: the background child's pipe to its parent, which waits for
/// the child's word.
struct Background(std::os::fd::OwnedFd);

/// Which side of [`Background::fork`] we are on.
enum Forked {
    /// The parent: exit with this.
    Parent(i32),
    Child(Background),
}

impl Background {
    fn fork() -> nix::Result<Forked> {
        let (read, write) = sys::pipe_cloexec()?;
        match sys::fork()? {
            Some(_) => {
                drop(write);
                let mut byte = [0u8; 1];
                Ok(Forked::Parent(match nix::unistd::read(&read, &mut byte) {
                    Ok(1) => byte[0] as i32,
                    _ => 255,
                }))
            }
            None => {
                drop(read);
                let _ = nix::unistd::setsid();
                sys::forget_inherited_control();
                Ok(Forked::Child(Background(write)))
            }
        }
    }

    /// Tell the parent how it went (it exits with `code`).
    fn done(self, code: u8) {
        let _ = nix::unistd::write(&self.0, &[code]);
    }
}
