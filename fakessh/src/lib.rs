//! `mitogen-fakessh`: run rsync, scp, sftp, git and make through one
//! established ssh/sudo connection chain. One executable, several roles,
//! chosen at start-up:
//!
//! - called as `ssh` (the shim on the wrapped command's PATH): the ssh shim;
//! - called as `scp` or `sftp`: exec the real tool with `-S <our ssh>`;
//! - `mitogen-fakessh __agent`: agent mode ([`agent`]), speaking frames on
//!   stdin/stdout;
//! - `mitogen-fakessh __man`, `completions SHELL`: generated documentation;
//! - otherwise: the host ([`host`]), which parses the CLI and runs COMMAND.
//!
//! How each hop starts is [`hop`].

pub mod agent;
pub mod cli;
pub mod docs;
pub mod fdstream;
#[doc(hidden)]
pub mod fuzzing;
pub mod hop;
pub mod host;
pub mod logging;
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
    match argv0.as_str() {
        // Arguments stay bytes: a file name need not be UTF-8.
        "ssh" => shims::run_ssh(&args[1..]),
        "scp" | "sftp" => shims::wrap::exec_with_our_ssh(&argv0, &args[1..]),
        _ if args.get(1).is_some_and(|a| a == roles::AGENT_ARG) => agent::main(),
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
