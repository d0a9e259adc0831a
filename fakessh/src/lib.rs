//! `mitogen-fakessh`: run rsync, scp, sftp, git and make through one
//! established ssh/sudo connection chain. One executable, several roles,
//! chosen at start-up:
//!
//! - called as `ssh` (the shim on the wrapped command's PATH): the ssh shim;
//! - called as `scp` or `sftp`: exec the real tool with `-S <our ssh>`;
//! - `mitogen-fakessh __agent`: agent mode ([`agent`]), speaking frames on
//!   stdin/stdout;
//! - `mitogen-fakessh agents [--agent PLATFORM=PATH]...`: the agents this
//!   host can upload ([`hop::agents`]);
//! - `mitogen-fakessh start|exec|status|stop`: a daemon that keeps its
//!   contexts across commands ([`daemon`]);
//! - `mitogen-fakessh __man`, `completions SHELL`: generated documentation;
//! - otherwise: the host ([`host`]), which parses the CLI and runs COMMAND.
//!
//! How each hop starts is [`hop`].

pub mod agent;
#[cfg(feature = "host")]
pub mod cli;
#[cfg(feature = "host")]
pub mod daemon;
#[cfg(feature = "host")]
pub mod docs;
pub mod fdstream;
#[cfg(feature = "host")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hop;
#[cfg(feature = "host")]
pub mod host;
pub mod logging;
#[cfg(feature = "host")]
pub mod prompt;
pub mod roles;
pub mod sys;

use std::ffi::OsString;
use std::path::Path;

/// Run the role `args` ask for; returns the exit status.
pub fn run(args: Vec<OsString>) -> i32 {
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shim = matches!(argv0.as_str(), "ssh" | "scp" | "sftp");
    match args.get(1) {
        Some(a) if !shim && a == roles::AGENT_ARG => agent::main(),
        Some(a) if !shim && args.len() == 2 && a == roles::PROBE_ARG => {
            println!("MFS-OK");
            0
        }
        _ => host_roles(&argv0, args),
    }
}

/// The roles of the full build: the shims, the host and its documentation.
#[cfg(feature = "host")]
fn host_roles(argv0: &str, args: Vec<OsString>) -> i32 {
    match argv0 {
        // Arguments stay bytes: a file name need not be UTF-8.
        "ssh" => shims::run_ssh(&args[1..]),
        "scp" | "sftp" => shims::wrap::exec_with_our_ssh(argv0, &args[1..]),
        _ if args.get(1).is_some_and(|a| a == "agents") => list_agents(&args[2..]),
        // `mitogen-fakessh start|exec|status|stop`; `-- start` runs a
        // command of that name.
        _ if args.get(1).is_some_and(|a| a == "start") => daemon::start(args[1..].to_vec()),
        _ if args.get(1).is_some_and(|a| a == "exec") => daemon::exec(args[1..].to_vec()),
        _ if args.get(1).is_some_and(|a| a == "status") => daemon::status(args[1..].to_vec()),
        _ if args.get(1).is_some_and(|a| a == "stop") => daemon::stop(args[1..].to_vec()),
        // The man page, for packagers: `mitogen-fakessh __man > mitogen-fakessh.1`.
        _ if args.len() == 2 && args[1] == "__man" => {
            print!("{}", docs::man_page());
            0
        }
        // `mitogen-fakessh completions SHELL`; `-- completions` runs a command of that name.
        _ if args.len() == 3 && args[1] == "completions" => {
            match docs::print_completions(&args[2].to_string_lossy()) {
                Ok(()) => 0,
                Err(e) => {
                    logging::stderr_line(&format!("mitogen-fakessh: {e}"));
                    255
                }
            }
        }
        _ => host::main(args),
    }
}

/// An agent-only build (`./build-agents`) has no other role.
#[cfg(not(feature = "host"))]
fn host_roles(_argv0: &str, _args: Vec<OsString>) -> i32 {
    logging::stderr_line(
        "mitogen-fakessh: this executable is an agent only, for remote hosts (./build-agents); run the full build (cargo build --release)",
    );
    255
}

/// `mitogen-fakessh agents [--agent PLATFORM=PATH]...`.
#[cfg(feature = "host")]
fn list_agents(args: &[OsString]) -> i32 {
    let mut flags = Vec::new();
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix("--agent=") {
            flags.push(value.to_string());
        } else if arg == "--agent"
            && let Some(value) = args.next()
        {
            flags.push(value);
        } else {
            logging::stderr_line(&format!(
                "mitogen-fakessh agents: unexpected argument {arg:?}; usage: mitogen-fakessh agents [--agent PLATFORM=PATH]..."
            ));
            return 255;
        }
    }
    hop::agents::print_list(&flags)
}
