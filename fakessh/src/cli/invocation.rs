//! What a command line asks for. Global options may come before a
//! subcommand, as in `git -C dir status`, and apply to it where they mean
//! something: `start` takes them all (merged with its own), `agents` its
//! `--agent` flags, `--config` and the log level; `exec`, `status` and
//! `stop` talk to a daemon whose chains `start` set, and use the log level
//! alone. A word that names a subcommand is the subcommand; after `--` it
//! is COMMAND (`mitogen-fakessh -- start` runs a program named start).

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::command_line::Cli;
use super::host_args::HostArgs;
use super::subcommands::{ExecCli, StartCli, StatusCli, StopCli, Subcommand};

/// A parsed command line.
#[derive(Debug)]
pub enum Invocation {
    /// Run COMMAND, or answer `--explain`.
    Run(Box<Cli>),
    /// `start`, the global options merged into its own.
    Start(StartCli),
    /// `exec`, with the global options (for the log level).
    Exec(ExecCli, HostArgs),
    /// `status`, with the global options (for the log level).
    Status(StatusCli, HostArgs),
    /// `stop`, with the global options (for the log level).
    Stop(StopCli, HostArgs),
    /// `agents`: the global options, its own `--agent` flags after theirs.
    Agents(HostArgs),
    /// `completions SHELL`.
    Completions(String),
}

/// Parse the command line of the host role (`args[0]` is the program).
pub fn parse(args: Vec<OsString>) -> Result<Invocation, clap::Error> {
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    let Some(subcommand) = cli.subcommand.take() else {
        if cli.command.is_empty() && cli.explain.is_none() {
            return Err(nothing_to_run(&mut command));
        }
        return Ok(Invocation::Run(Box::new(cli)));
    };
    let name = matches.subcommand_name().unwrap_or_default().to_string();
    for (id, flag) in [("explain", "--explain"), ("grace", "--grace")] {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                format!("{flag} is for a run (mitogen-fakessh [OPTIONS] COMMAND), not for {name}"),
            ));
        }
    }
    let global = cli.host;
    let conflict = |message: String| {
        let mut sub = command.find_subcommand(&name).cloned().unwrap_or_default();
        sub.error(ErrorKind::ArgumentConflict, message)
    };
    Ok(match subcommand {
        Subcommand::Start(mut start) => {
            start.host = merged(global, start.host, &name).map_err(conflict)?;
            Invocation::Start(start)
        }
        Subcommand::Exec(exec) => Invocation::Exec(exec, global),
        Subcommand::Status(status) => Invocation::Status(status, global),
        Subcommand::Stop(stop) => Invocation::Stop(stop, global),
        Subcommand::Agents(own) => {
            let mut global = global;
            global.agents.extend(own.agents);
            Invocation::Agents(global)
        }
        Subcommand::Completions(completions) => Invocation::Completions(completions.shell),
    })
}

/// Neither COMMAND nor a subcommand (nor --explain): say what may come.
fn nothing_to_run(command: &mut clap::Command) -> clap::Error {
    let names: Vec<String> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_string())
        .collect();
    command.error(
        ErrorKind::MissingRequiredArgument,
        format!(
            "no COMMAND to run, and no subcommand ({}); see --help",
            names.join(", ")
        ),
    )
}

/// The global options (`before`) and a subcommand's own (`after`): lists
/// in command-line order, counts added, and a value given on both sides
/// refused, as clap refuses a flag given twice.
fn merged(before: HostArgs, after: HostArgs, name: &str) -> Result<HostArgs, String> {
    // Every field named, so that a new flag must be placed here.
    let HostArgs {
        to,
        mut hosts,
        config,
        ssh_config,
        password_file,
        mut agents,
        agent_dir,
        forward_agent_across_users,
        remote_gateway_ports,
        verbose,
        quiet,
    } = before;
    hosts.extend(after.hosts);
    agents.extend(after.agents);
    let verbose = verbose.saturating_add(after.verbose);
    let quiet = quiet || after.quiet;
    if quiet && verbose > 0 {
        return Err("--quiet cannot be used with --verbose".to_string());
    }
    Ok(HostArgs {
        to: once("--to", to, after.to, name)?,
        hosts,
        config: once("--config", config, after.config, name)?,
        ssh_config: once("--ssh-config", ssh_config, after.ssh_config, name)?,
        password_file: once("--password-file", password_file, after.password_file, name)?,
        agents,
        agent_dir: once("--agent-dir", agent_dir, after.agent_dir, name)?,
        forward_agent_across_users: forward_agent_across_users || after.forward_agent_across_users,
        remote_gateway_ports: remote_gateway_ports || after.remote_gateway_ports,
        verbose,
        quiet,
    })
}

/// A flag that takes one value, given before or after subcommand `name`.
fn once<T>(
    flag: &str,
    before: Option<T>,
    after: Option<T>,
    name: &str,
) -> Result<Option<T>, String> {
    match (before, after) {
        (Some(_), Some(_)) => Err(format!(
            "{flag} given both before and after {name}; give it once"
        )),
        (before, after) => Ok(before.or(after)),
    }
}

impl HostArgs {
    /// The flags given that choose or start chains (all but `--config`,
    /// `-v` and `-q`): without effect on `exec`, `status` and `stop`,
    /// whose daemon's chains `start` set.
    pub fn chain_flags(&self) -> Vec<&'static str> {
        let HostArgs {
            to,
            hosts,
            config: _,
            ssh_config,
            password_file,
            agents,
            agent_dir,
            forward_agent_across_users,
            remote_gateway_ports,
            verbose: _,
            quiet: _,
        } = self;
        [
            ("--to", to.is_some()),
            ("--host", !hosts.is_empty()),
            ("--ssh-config", ssh_config.is_some()),
            ("--password-file", password_file.is_some()),
            ("--agent", !agents.is_empty()),
            ("--agent-dir", agent_dir.is_some()),
            ("--forward-agent-across-users", *forward_agent_across_users),
            ("--remote-gateway-ports", *remote_gateway_ports),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(flag, _)| flag)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Invocation {
        let mut argv = vec![OsString::from("mitogen-fakessh")];
        argv.extend(args.iter().map(OsString::from));
        parse(argv).unwrap()
    }

    #[test]
    fn options_before_a_subcommand_apply_to_it() {
        let Invocation::Start(start) = parsed(&[
            "--ssh-config",
            "cfg",
            "--host",
            "p*=ssh:lab",
            "-v",
            "start",
            "--host",
            "q*=local",
            "-v",
            "-s",
        ]) else {
            panic!("not start")
        };
        assert_eq!(start.host.hosts, ["p*=ssh:lab", "q*=local"]);
        assert_eq!(start.host.ssh_config.as_deref(), Some("cfg".as_ref()));
        assert_eq!(start.host.verbose, 2);
        assert!(start.sh);
        assert!(matches!(parsed(&["-v", "agents"]), Invocation::Agents(a) if a.verbose == 1));
        let Invocation::Status(status, global) = parsed(&["--config", "x", "status", "--json"])
        else {
            panic!("not status")
        };
        assert!(status.json);
        assert!(global.chain_flags().is_empty());
        assert!(matches!(
            parsed(&["--to", "local", "exec", "--", "make"]),
            Invocation::Exec(exec, global) if exec.command == ["make"] && global.chain_flags() == ["--to"]
        ));
    }

    #[test]
    fn after_double_dash_a_subcommand_name_is_a_program() {
        let Invocation::Run(cli) = parsed(&["-v", "--", "start", "now"]) else {
            panic!("not a run")
        };
        assert_eq!(cli.command, ["start", "now"]);
        let Invocation::Run(cli) = parsed(&["rsync", "status"]) else {
            panic!("not a run")
        };
        assert_eq!(cli.command, ["rsync", "status"]);
        // clap's own `help` subcommand would hide a program of that name.
        assert!(matches!(parsed(&["help"]), Invocation::Run(_)));
    }

    #[test]
    fn run_only_and_twice_given_options_are_refused() {
        let refused = |args: &[&str]| {
            let mut argv = vec![OsString::from("mitogen-fakessh")];
            argv.extend(args.iter().map(OsString::from));
            parse(argv).unwrap_err().to_string()
        };
        assert!(refused(&["--grace", "5s", "start"]).contains("--grace is for a run"));
        assert!(refused(&["--explain", "h", "status"]).contains("--explain is for a run"));
        assert!(
            refused(&["--to", "local", "start", "--to", "local"])
                .contains("--to given both before and after start")
        );
        assert!(refused(&[]).contains("start, exec, status, stop, agents, completions"));
    }
}
