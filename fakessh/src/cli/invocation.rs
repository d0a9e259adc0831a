//! What a command line asks for. Global options may come before a
//! subcommand, as in `git -C dir status`, and apply to it where they mean
//! something: `start` takes them all (joined with its own), `agents` its
//! `--agent` flags, `--config` and the log level; `exec`, `status` and
//! `stop` talk to a daemon whose chains `start` set, and use the log level
//! alone. A word that names a subcommand is the subcommand; after `--` it
//! is COMMAND (`mitogen-fakessh -- start` runs a program named start).
//!
//! A run, `start` and `agents` read the config file: more arguments, under
//! the command line's ([`super::config_file`], [`super::layers`]).

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::command_line::Cli;
use super::config_file::{ConfigFile, ConfigFileError};
use super::host_args::{FileOrigins, HostArgs};
use super::layers::{self, Combined, LayerError, Precedence};
use super::subcommands::{ExecCli, StartCli, StatusCli, StopCli, Subcommand};

/// A parsed command line.
#[derive(Debug)]
pub enum Invocation {
    /// Run COMMAND, or answer `--explain`.
    Run(Box<Cli>),
    /// `start`, the global options joined with its own.
    Start(StartCli),
    /// `exec`, and what the global options say to a daemon client.
    Exec(ExecCli, DaemonClient),
    /// `status`, and what the global options say to a daemon client.
    Status(StatusCli, DaemonClient),
    /// `stop`, and what the global options say to a daemon client.
    Stop(StopCli, DaemonClient),
    /// `agents`: the global options, its own `--agent` flags after theirs.
    Agents(HostArgs),
    /// `completions SHELL`.
    Completions(String),
}

/// What `exec`, `status` and `stop` take of the global options.
#[derive(Debug)]
pub struct DaemonClient {
    /// As [`HostArgs::log_level`].
    pub log_level: u8,
    /// The flags given that choose or start chains, without effect here:
    /// the daemon's chains were set by `start`.
    pub ignored: Vec<String>,
}

/// A command line that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage, or help and version (clap prints them).
    #[error(transparent)]
    Usage(#[from] clap::Error),
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The config file's options and the command line's do not combine.
    #[error("{}: {source}", .path.display())]
    Combine {
        path: std::path::PathBuf,
        source: LayerError,
    },
}

/// The global options that mean something to a daemon client.
const DAEMON_CLIENT_FLAGS: &[&str] = &["config", "verbose", "quiet"];

/// Parse the command line of the host role (`args[0]` is the program),
/// and read the config file where it applies.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, CliError> {
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    let Some(subcommand) = cli.subcommand.take() else {
        if cli.command.is_empty() && cli.explain.is_none() {
            return Err(nothing_to_run(&mut command).into());
        }
        cli.host = with_config_file(&matches)?;
        return Ok(Invocation::Run(Box::new(cli)));
    };
    let (name, own) = matches.subcommand().expect("a subcommand was parsed");
    let name = name.to_string();
    for (id, flag) in [("explain", "--explain"), ("grace", "--grace")] {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            return Err(command
                .error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "{flag} is for a run (mitogen-fakessh [OPTIONS] COMMAND), not for {name}"
                    ),
                )
                .into());
        }
    }
    let conflict = |e: LayerError| {
        let message = match e {
            LayerError::Twice(flag) => {
                format!("{flag} given both before and after {name}; give it once")
            }
            LayerError::Refused(message) => message,
        };
        let mut sub = command.find_subcommand(&name).cloned().unwrap_or_default();
        CliError::Usage(sub.error(ErrorKind::ArgumentConflict, message))
    };
    let joined = || layers::combined(&[&matches, own], Precedence::Joined).map_err(conflict);
    Ok(match subcommand {
        Subcommand::Start(mut start) => {
            start.host = with_config_file(&joined()?.matches)?;
            Invocation::Start(start)
        }
        Subcommand::Exec(exec) => Invocation::Exec(exec, daemon_client(&matches, &cli.host)),
        Subcommand::Status(status) => {
            Invocation::Status(status, daemon_client(&matches, &cli.host))
        }
        Subcommand::Stop(stop) => Invocation::Stop(stop, daemon_client(&matches, &cli.host)),
        Subcommand::Agents(_) => Invocation::Agents(with_config_file(&joined()?.matches)?),
        Subcommand::Completions(completions) => Invocation::Completions(completions.shell),
    })
}

/// The options `given` (the matches of the whole command line, or of its
/// parts joined), under which the config file they name is read.
fn with_config_file(given: &ArgMatches) -> Result<HostArgs, CliError> {
    let own = HostArgs::from_arg_matches(given)?;
    let Some(file) = ConfigFile::load(own.config.as_deref())? else {
        return Ok(own);
    };
    let Combined {
        mut args, places, ..
    } = layers::combined(&[given, &file.matches], Precedence::FirstWins).map_err(|source| {
        CliError::Combine {
            path: file.path.clone(),
            source,
        }
    })?;
    let from_file = |id: &str| places.get(id).is_some_and(|p| p.contains(&1));
    args.from_file = Some(Box::new(FileOrigins {
        path: file.path,
        hosts: file.hosts,
        to: file.to.filter(|_| from_file("to")),
    }));
    Ok(args)
}

/// What a daemon client takes of the global options: the log level, and
/// the flags it ignores, to say so.
fn daemon_client(matches: &ArgMatches, global: &HostArgs) -> DaemonClient {
    let ignored = layers::host_command()
        .get_arguments()
        .filter(|arg| !DAEMON_CLIENT_FLAGS.contains(&arg.get_id().as_str()))
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect();
    DaemonClient {
        log_level: global.log_level(),
        ignored,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::host_args::texts;

    /// `args` parsed; without `--config`, with `--config none`, so that
    /// no config file of this machine's is read.
    fn parsed(args: &[&str]) -> Invocation {
        let mut argv = vec![OsString::from("mitogen-fakessh")];
        if !args.contains(&"--config") {
            argv.extend(["--config", "none"].map(OsString::from));
        }
        argv.extend(args.iter().map(OsString::from));
        parse(argv).unwrap()
    }

    #[test]
    fn the_config_file_is_more_arguments_under_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("team.toml");
        std::fs::write(
            &file,
            "to = \"ssh:%h\"\nssh-config = \"fleet\"\nverbose = 2\n\
             agent = [\"Linux b=/b\"]\n\
             [[host]]\npattern = \"w*\"\nchain = \"local\"\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let Invocation::Run(cli) = parsed(&[
            "--config",
            file,
            "--host",
            "x=local",
            "--to",
            "local",
            "-q",
            "--remote-gateway-ports",
            "--agent",
            "Linux a=/a",
            "--",
            "true",
        ]) else {
            panic!("not a run")
        };
        let host = &cli.host;
        assert_eq!(texts(&host.hosts), ["x=local", "w*=local"]);
        assert_eq!(host.to.as_deref(), Some("local"));
        assert_eq!(host.ssh_config, Some(dir.path().join("fleet")));
        assert_eq!((host.quiet, host.verbose), (true, 0));
        assert!(host.remote_gateway_ports);
        let platforms: Vec<&str> = host.agents.iter().map(|a| &*a.platform).collect();
        assert_eq!(platforms, ["Linux a", "Linux b"]);
        let origins = host.from_file.as_ref().unwrap();
        assert_eq!((origins.hosts.len(), origins.to), (1, None));
        // Before and after start alike; the file's `to` stands alone.
        let Invocation::Start(start) = parsed(&["--config", file, "start", "--host", "y=local"])
        else {
            panic!("not start")
        };
        assert_eq!(texts(&start.host.hosts), ["y=local", "w*=local"]);
        assert_eq!(start.host.to.as_deref(), Some("ssh:%h"));
        assert_eq!(start.host.verbose, 2);
        assert_eq!(start.host.from_file.unwrap().to, Some(1));
        // `agents` lists the file's agents after its own.
        let Invocation::Agents(agents) = parsed(&["--config", file, "agents", "--agent", "C c=/c"])
        else {
            panic!("not agents")
        };
        let platforms: Vec<&str> = agents.agents.iter().map(|a| &*a.platform).collect();
        assert_eq!(platforms, ["C c", "Linux b"]);
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
        assert_eq!(texts(&start.host.hosts), ["p*=ssh:lab", "q*=local"]);
        assert_eq!(start.host.ssh_config.as_deref(), Some("cfg".as_ref()));
        assert_eq!(start.host.verbose, 2);
        assert!(start.sh);
        assert!(matches!(parsed(&["-v", "agents"]), Invocation::Agents(a) if a.verbose == 1));
        let Invocation::Status(status, global) = parsed(&["--config", "x", "status", "--json"])
        else {
            panic!("not status")
        };
        assert!(status.json);
        assert!(global.ignored.is_empty());
        assert!(matches!(
            parsed(&["--to", "local", "exec", "--", "make"]),
            Invocation::Exec(exec, global) if exec.command == ["make"] && global.ignored == ["--to"]
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
