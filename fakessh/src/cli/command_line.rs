//! The whole command line: the shared options, a run's own, COMMAND, or a
//! subcommand.

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser;

use super::host_args::{HostArgs, duration};
use super::subcommands::Subcommand;

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
