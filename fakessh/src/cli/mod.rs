//! The command line of the host role. Flags are documented here once; the
//! man page is generated from this definition.
//!
//! - [`subcommands`]: `start`, `exec`, `status`, `stop`, `agents`,
//!   `completions`;
//! - [`invocation`]: what a command line asks for, the global options
//!   joined with the subcommand they come before;
//! - [`config_file`]: the team config file, as more arguments;
//! - [`layers`]: options given in several places as one set, each flag
//!   combined as its clap action says.

mod command_line;
mod config_file;
mod host_args;
mod invocation;
mod layers;
mod subcommands;

pub use command_line::Cli;
pub use config_file::keys as config_keys;
pub use host_args::{FileOrigins, FileRule, HostArgs, HostFlag, duration};
pub use invocation::{CliError, DaemonClient, Invocation, parse};
pub use layers::host_command;
pub use subcommands::{
    AgentsCli, CompletionsCli, DaemonSocket, ExecCli, StartCli, StatusCli, StopCli, Subcommand,
};

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn command_keeps_its_own_options() {
        let cli = Cli::try_parse_from([
            "mitogen-fakessh",
            "--to",
            "local",
            "rsync",
            "-a",
            "--delete",
            "x",
            "h:y",
        ])
        .unwrap();
        assert_eq!(cli.host.to.as_deref(), Some("local"));
        assert_eq!(cli.command, ["rsync", "-a", "--delete", "x", "h:y"]);
        let cli = Cli::try_parse_from(["mitogen-fakessh", "-vv", "--", "sh", "-c", "ssh h true"])
            .unwrap();
        assert_eq!(cli.host.log_level(), 3);
        assert_eq!(cli.command.len(), 3);
        assert!(
            parse(vec![
                "mitogen-fakessh".into(),
                "--to".into(),
                "local".into()
            ])
            .is_err()
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
