//! One executable, several roles, chosen at start-up:
//!
//! - called as `ssh` (the shim on the wrapped command's PATH): the ssh shim;
//! - called as `scp` or `sftp`: exec the real tool with `-S <our ssh>`;
//! - `mitogen-fakessh __agent`: agent mode, speaking frames on stdin/stdout;
//! - `mitogen-fakessh __man`, `completions SHELL`: generated documentation;
//! - otherwise: the host, which parses the CLI and runs COMMAND.

use std::ffi::OsString;
use std::path::Path;

/// Hidden first argument that selects agent mode.
pub const AGENT_ARG: &str = "__agent";

/// Run the role `args` ask for; returns the exit status.
pub fn run(args: Vec<OsString>) -> i32 {
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match argv0.as_str() {
        "ssh" | "scp" | "sftp" => match utf8_args(&argv0, &args[1..]) {
            Ok(rest) if argv0 == "ssh" => shims::run_ssh(&rest),
            Ok(rest) => shims::wrap::exec_with_our_ssh(&argv0, &rest),
            Err(code) => code,
        },
        _ if args.get(1).is_some_and(|a| a == AGENT_ARG) => crate::agent::main(),
        // The man page, for packagers: `mitogen-fakessh __man > mitogen-fakessh.1`.
        _ if args.len() == 2 && args[1] == "__man" => {
            print!("{}", crate::docs::man_page());
            0
        }
        // `mitogen-fakessh completions SHELL`; `-- completions` runs a command of that name.
        _ if args.len() == 3 && args[1] == "completions" => {
            match crate::docs::print_completions(&args[2].to_string_lossy()) {
                Ok(()) => 0,
                Err(e) => {
                    crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
                    2
                }
            }
        }
        _ => crate::host::main(args),
    }
}

/// The tokio runtime of the host and of every agent: two workers, enough to
/// overlap the transport with the sessions on a small machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The shims carry arguments as UTF-8 text; refuse anything else loudly
/// rather than corrupt a path.
fn utf8_args(tool: &str, args: &[OsString]) -> Result<Vec<String>, i32> {
    args.iter()
        .map(|a| {
            a.clone().into_string().map_err(|bad| {
                crate::logging::stderr_line(&format!(
                    "{tool}: argument {:?} is not valid UTF-8; mitogen-fakessh cannot pass it on",
                    bad.to_string_lossy()
                ));
                255
            })
        })
        .collect()
}
