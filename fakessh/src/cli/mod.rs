//! The command line of the host role. Flags are documented here once; the
//! man page is generated from this definition.
//!
//! - [`subcommands`]: `start`, `exec`, `status`, `stop`, `agents`,
//!   `completions`;
//! - [`invocation`]: what a command line asks for, the global options
//!   merged into the subcommand they come before.

mod invocation;
mod subcommands;

pub use invocation::{Invocation, parse};
pub use subcommands::{
    AgentsCli, CompletionsCli, DaemonSocket, ExecCli, StartCli, StatusCli, StopCli, Subcommand,
};

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

const EXAMPLES: &str = "\
Examples:
  mitogen-fakessh --to local -- rsync -a src/ anyhost:/tmp/dst/
      every ssh the command starts runs in a local agent (no sshd needed)
  mitogen-fakessh --to ssh:deploy@web1,sudo:root -- rsync -a build/ web1:/srv/app/
      files land as root, although sudo demands a tty
  mitogen-fakessh --host web=ssh:bastion,ssh:web1 --host db=ssh:db1 -- make -j8 deploy
      each hostname reached through its own chain, connections reused
  mitogen-fakessh --host 'web*=ssh:deploy@%h,sudo:root' -- make -j16 deploy
      every web* hostname through its own ssh connection, then sudo
  mitogen-fakessh --explain web7
      which chain web7 gets, and from which rule (command line or config file)
  mitogen-fakessh rsync -a /tmp remote:/tmp
      hostnames connected on first use as ssh:[USER@]HOST[:PORT]

Chains:
  CHAIN := HOP[,HOP]...
  HOP   := local | ssh:[USER@]HOST[:PORT] | sudo[:USER] | su[:USER] | doas[:USER]

Environment:
  MITOGEN_FAKESSH_LOG   a RUST_LOG-style filter (e.g. debug, mitogen_fakessh=trace) that
                        overrides -v and -q; an invalid one is warned about and ignored

Subcommands:
  Global options may come before a subcommand, as in `git -C dir status`:
      mitogen-fakessh --config team.toml start
  start takes them all; exec, status and stop use -v and -q alone (the
  daemon's chains were set by start); agents uses --agent, --config, -v, -q.
  A word that names a subcommand is the subcommand; after `--` it is a program:
      mitogen-fakessh -- start    runs a program named start

Exit status: the command's; 255 when mitogen-fakessh fails before the command ran.
Shell completions: mitogen-fakessh completions bash|zsh|fish";

const LONG_ABOUT: &str = "\
Run COMMAND so that every ssh, scp and sftp it starts goes through connections that \
mitogen-fakessh holds: ssh to a host, through bastions, then sudo, su or doas to another \
account, even where sudo demands a tty (requiretty). Nothing needs to be installed on the \
remote hosts beforehand: mitogen-fakessh uploads itself as the agent and caches it.

COMMAND runs with ssh, scp and sftp shims first on its PATH. Each ssh invocation, \
sequential or concurrent, becomes a session on the context that serves its hostname; \
remote commands run as sshd runs them (the login shell with -c, in the home directory), \
with separate stdout and stderr, flow control and the remote exit status.";

/// Run COMMAND so that every ssh, scp and sftp it starts goes through
/// connections mitogen-fakessh holds: ssh to a host, through bastions, then
/// sudo/su/doas to another account, even under sudo's requiretty.
/// The flags that say how hostnames are reached and how hops start:
/// shared by a run and by `mitogen-fakessh start`.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// Every hostname the command asks for is reached through CHAIN; with
    /// %h (the hostname), %r (the user), %p (the port) or %% in it, CHAIN
    /// is a template expanded per hostname, e.g. --to 'ssh:%h,sudo:root'.
    #[arg(long, value_name = "CHAIN")]
    pub to: Option<String>,

    /// Hostnames matching PATTERN (ssh_config patterns: *, ?, !negation,
    /// comma lists) are reached through CHAIN, which may hold %h, %r, %p
    /// (repeatable; the first match wins, e.g. --host 'web*=ssh:deploy@%h,sudo:root').
    /// Other names fall back to --to, then to the config file, else to ssh:NAME.
    #[arg(long = "host", value_name = "PATTERN=CHAIN")]
    pub hosts: Vec<String>,

    /// Team config file (TOML: host patterns, chains and defaults for these
    /// flags); default ${XDG_CONFIG_HOME:-~/.config}/mitogen-fakessh/config,
    /// `none` for no file. The command line wins over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// ssh_config to read instead of ~/.ssh/config (like ssh -F).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// Password for sudo/su/doas hops (the file's first line; refused if the
    /// group or others may access the file); without it, mitogen-fakessh
    /// prompts on the controlling terminal. Never on argv, and never sent to
    /// an sshd: an ssh password is asked for naming user@host, as by ssh.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Upload this agent executable to remote hosts whose `uname -sm` is
    /// PLATFORM (repeatable), e.g. --agent "Linux aarch64=/path/to/mitogen-fakessh".
    #[arg(long = "agent", value_name = "PLATFORM=PATH")]
    pub agents: Vec<String>,

    /// Keep the agent in DIR on remote hosts, instead of the first of the
    /// cache, $XDG_RUNTIME_DIR, /dev/shm, /tmp and /var/tmp where it executes.
    /// Like those, DIR is used only if it is the remote account's own, no
    /// symbolic link, not writable by group or others, and each directory
    /// above it is root's or that account's, writable by no one else unless
    /// it is root's and sticky (as /tmp).
    #[arg(long, value_name = "DIR", value_parser = crate::hop::bootstrap::agent_dir)]
    pub agent_dir: Option<String>,

    /// Let `ssh -A` forward your ssh-agent to a chain whose last hop is
    /// sudo, su or doas. Every process of that account can then use your
    /// agent while the session runs. Without this flag such a session runs
    /// without an agent, and a one-line warning says so.
    #[arg(long)]
    pub forward_agent_across_users: bool,

    /// Let `ssh -R ADDRESS:PORT:...` listen on the address it asks for (`*`
    /// or empty: every interface), as sshd's GatewayPorts clientspecified.
    /// Without this flag remote forwards listen on the far side's loopback
    /// only, whatever the address, as sshd's default GatewayPorts no.
    #[arg(long)]
    pub remote_gateway_ports: bool,

    /// More diagnostics on stderr (-v hops, -vv sessions, -vvv frames).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// A duration: `30s`, `10m`, `1h30m`, or plain seconds.
pub fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "mitogen-fakessh",
    version,
    about = "Run rsync, scp, sftp, git and make through one established connection chain",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    override_usage = "mitogen-fakessh [OPTIONS] [--] COMMAND [ARG]...\n       mitogen-fakessh [OPTIONS] SUBCOMMAND [ARG]...",
    propagate_version = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
)]
pub struct Cli {
    #[command(flatten)]
    pub host: HostArgs,

    /// Print the chain HOST ([USER@]HOST[:PORT]) gets and which rule gave
    /// it, then exit; no COMMAND is run.
    #[arg(long, value_name = "HOST")]
    pub explain: Option<String>,

    /// After COMMAND exits, wait this long at most for the sessions it left
    /// running (a backgrounded ssh, unison's) to end before ending them.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub grace: Duration,

    /// The command to run, and its arguments (required unless --explain);
    /// after `--` if it is named like a subcommand (`mitogen-fakessh -- start`).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 1..,
        value_hint = clap::ValueHint::CommandWithArguments
    )]
    pub command: Vec<OsString>,

    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,
}

impl HostArgs {
    /// Tracing level: 0 errors, 1 warnings (default), 2 info, 3 debug, 4 trace.
    pub fn log_level(&self) -> u8 {
        if self.quiet {
            0
        } else {
            1 + self.verbose.min(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
