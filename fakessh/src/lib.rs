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
//! - otherwise: the host ([`host`]), which runs COMMAND.
//!
//! The subcommands are clap's ([`cli::parse`]): global options may come
//! before them, and after `--` their names are programs.
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
    use cli::Invocation;
    match argv0 {
        // Arguments stay bytes: a file name need not be UTF-8.
        "ssh" => return shims::run_ssh(&args[1..]),
        "scp" | "sftp" => return shims::wrap::exec_with_our_ssh(argv0, &args[1..]),
        _ => {}
    }
    // The man page, for packagers: `mitogen-fakessh __man > mitogen-fakessh.1`.
    // A hidden role word, as `__agent` is, and not a subcommand: clap's
    // completions would offer a hidden subcommand.
    if args.len() == 2 && args[1] == "__man" {
        print!("{}", docs::man_page());
        return 0;
    }
    // Subcommands are clap's: global options may come before them, and
    // `--` makes the next word COMMAND (`mitogen-fakessh -- start`).
    let invocation = match cli::parse(args) {
        Ok(invocation) => invocation,
        Err(cli::CliError::Usage(e)) => return host::usage_error(e),
        Err(e) => {
            logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            return host::EXIT_FAILURE;
        }
    };
    match invocation {
        Invocation::Run(cli) => host::main(*cli),
        Invocation::Start(start) => daemon::start(start),
        Invocation::Exec(exec, global) => {
            daemon_client_logging(&global, "exec");
            daemon::exec(exec)
        }
        Invocation::Status(status, global) => {
            daemon_client_logging(&global, "status");
            daemon::status(status)
        }
        Invocation::Stop(stop, global) => {
            daemon_client_logging(&global, "stop");
            daemon::stop(stop)
        }
        Invocation::Agents(global) => {
            logging::init(global.log_level(), None);
            hop::agents::print_list(&global.agents)
        }
        Invocation::Completions(shell) => match docs::print_completions(&shell) {
            Ok(()) => 0,
            Err(e) => {
                logging::stderr_line(&format!("mitogen-fakessh: {e}"));
                255
            }
        },
    }
}

/// `exec`, `status` and `stop` take the global options' log level; their
/// chain flags are the daemon's business (set by `start`): said once.
#[cfg(feature = "host")]
fn daemon_client_logging(global: &cli::DaemonClient, subcommand: &str) {
    logging::init(global.log_level, None);
    for flag in &global.ignored {
        tracing::warn!(
            "{flag} has no effect on {subcommand}: the daemon's chains were set by start"
        );
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
