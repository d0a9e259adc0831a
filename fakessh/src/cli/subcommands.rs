//! The subcommands: `start`, `exec`, `status`, `stop` (the daemon),
//! `agents` and `completions`. Each takes the global options before its
//! name (see [`super::invocation`]) and its own after it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::host_args::{HostArgs, duration};
use crate::hop::agents::AgentFlag;

/// The words that are subcommands. A program of the same name runs after
/// `--`: `mitogen-fakessh -- start`.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    #[command(
        about = "Start a daemon that keeps contexts across commands; print shell code to eval",
        after_help = "Example:\n  eval \"$(mitogen-fakessh start --host 'web*=ssh:%h,sudo:root')\"\n  rsync -a build/ web1:/srv/app/    # through the daemon\n  mitogen-fakessh status\n  mitogen-fakessh stop"
    )]
    Start(StartCli),
    #[command(about = "Run COMMAND through the running daemon")]
    Exec(ExecCli),
    #[command(about = "List the running daemon's contexts")]
    Status(StatusCli),
    #[command(about = "Stop the running daemon; print shell code that undoes start's")]
    Stop(StopCli),
    #[command(about = "List the agents this host can upload: platform, size, checksum, source")]
    Agents(AgentsCli),
    #[command(about = "Print shell completions for bash, zsh or fish")]
    Completions(CompletionsCli),
}

// `mitogen-fakessh start`: a daemon that keeps its contexts across
// commands; prints shell code to `eval` (like ssh-agent) that points the
// shell's ssh, scp and sftp at it.
#[derive(Debug, Args)]
pub struct StartCli {
    #[command(flatten)]
    pub host: HostArgs,

    /// End a context that has had no session for this long (its next
    /// session reconnects).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub idle_timeout: Duration,

    /// The daemon's socket (default $XDG_RUNTIME_DIR/mitogen-fakessh/daemon.sock,
    /// else a fresh ${TMPDIR:-/tmp}/mitogen-fakessh-daemon-XXXXXXXXXX/daemon.sock);
    /// its directory must be yours, writable by you alone, and not a symbolic link.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print sh code (the default unless $SHELL is a csh or fish).
    #[arg(short = 's', conflicts_with_all = ["csh", "fish"])]
    pub sh: bool,

    /// Print csh code.
    #[arg(short = 'c', conflicts_with = "fish")]
    pub csh: bool,

    /// Print fish code.
    #[arg(long)]
    pub fish: bool,
}

/// Which daemon `exec`, `status` and `stop` talk to.
#[derive(Debug, Args)]
pub struct DaemonSocket {
    /// The daemon's socket (default: $MITOGEN_FAKESSH_SOCK, else
    /// $XDG_RUNTIME_DIR/mitogen-fakessh/daemon.sock). Believed only if its
    /// directory is yours alone and the daemon runs as you.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

// `mitogen-fakessh exec -- COMMAND`: run COMMAND against the running
// daemon (its ssh, scp and sftp go through the daemon's contexts).
#[derive(Debug, Args)]
pub struct ExecCli {
    #[command(flatten)]
    pub daemon: DaemonSocket,

    /// The command to run, and its arguments.
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        num_args = 1..,
        value_hint = clap::ValueHint::CommandWithArguments
    )]
    pub command: Vec<OsString>,
}

// `mitogen-fakessh status`: the daemon's contexts.
#[derive(Debug, Args)]
pub struct StatusCli {
    #[command(flatten)]
    pub daemon: DaemonSocket,

    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

// `mitogen-fakessh stop`: end the daemon, its remote agents and their
// commands; remove its socket and directory; print the shell code that
// undoes `start`'s (unset its variables, take its shims off PATH), as
// `ssh-agent -k` does.
#[derive(Debug, Args)]
pub struct StopCli {
    #[command(flatten)]
    pub daemon: DaemonSocket,

    /// Print sh code (the default unless $SHELL is a csh or fish).
    #[arg(short = 's', conflicts_with_all = ["csh", "fish"])]
    pub sh: bool,

    /// Print csh code.
    #[arg(short = 'c', conflicts_with = "fish")]
    pub csh: bool,

    /// Print fish code.
    #[arg(long)]
    pub fish: bool,
}

// `mitogen-fakessh agents`: the agents this host can upload.
#[derive(Debug, Args)]
pub struct AgentsCli {
    /// Also this agent executable, for remote hosts whose `uname -sm` is
    /// PLATFORM (repeatable), as for a run.
    #[arg(long = "agent", value_name = "PLATFORM=PATH")]
    pub agents: Vec<AgentFlag>,
}

// `mitogen-fakessh completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsCli {
    /// bash, zsh or fish.
    #[arg(value_name = "SHELL")]
    pub shell: String,
}
