//! The options of a run that `start` shares: chains, hosts, ssh config,
//! password file, agents, verbosity.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, ValueHint};

use crate::hop::agents::AgentFlag;

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
    pub hosts: Vec<HostFlag>,

    /// Team config file (TOML: host patterns, chains and defaults for these
    /// flags); default ${XDG_CONFIG_HOME:-~/.config}/mitogen-fakessh/config,
    /// `none` for no file. The command line wins over it.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// ssh_config to read instead of ~/.ssh/config (like ssh -F).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub ssh_config: Option<PathBuf>,

    /// Password for sudo/su/doas hops (the file's first line; refused if the
    /// group or others may access the file); without it, mitogen-fakessh
    /// prompts on the controlling terminal. Never on argv, and never sent to
    /// an sshd: an ssh password is asked for naming user@host, as by ssh.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,

    /// Upload this agent executable to remote hosts whose `uname -sm` is
    /// PLATFORM (repeatable), e.g. --agent "Linux aarch64=/path/to/mitogen-fakessh".
    #[arg(long = "agent", value_name = "PLATFORM=PATH")]
    pub agents: Vec<AgentFlag>,

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

    /// SSH channels toward each ssh hop's agent where the round trip is 5 ms
    /// or more (1 to 12; default 12). sshd lets each channel carry 2 MiB per
    /// round trip toward it; each channel beyond the first connects to a
    /// Unix socket of the agent's (or where sshd forbids that, runs `cat`
    /// into it), and the frames go round them. 1 keeps to one channel, as
    /// ssh does.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=12))]
    pub lanes: Option<u8>,

    /// More diagnostics on stderr (-v hops, -vv sessions, -vvv frames).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Which of `hosts` and `to` the config file gave, and where.
    #[arg(skip)]
    pub from_file: Option<Box<FileOrigins>>,
}

/// Where the config file's rules were written, once they are combined
/// with the command line's: the last `hosts.len()` values of `--host` are
/// the file's, and `--to` is the file's if `to` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOrigins {
    pub path: PathBuf,
    pub hosts: Vec<FileRule>,
    pub to: Option<usize>,
}

/// One `[[host]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRule {
    /// The line of its pattern.
    pub line: usize,
    /// The line of its chain, for an error in it.
    pub chain_line: usize,
    /// Where the agents of this rule's chains are kept.
    pub agent_dir: Option<String>,
}

/// One `--host PATTERN=CHAIN`, parsed by clap with [`str::parse`]; the
/// chain is checked when the routing table is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFlag {
    /// ssh_config patterns: `*`, `?`, `!` negation, comma lists.
    pub patterns: String,
    pub chain: String,
}

impl std::str::FromStr for HostFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<HostFlag, String> {
        let (patterns, chain) = text.split_once('=').ok_or_else(|| {
            "expected PATTERN=CHAIN, e.g. --host 'web*=ssh:deploy@%h,sudo:root'".to_string()
        })?;
        if patterns.trim().is_empty() {
            return Err("empty pattern".to_string());
        }
        Ok(HostFlag {
            patterns: patterns.to_string(),
            chain: chain.to_string(),
        })
    }
}

impl std::fmt::Display for HostFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.patterns, self.chain)
    }
}

/// A duration: `30s`, `10m`, `1h30m`, or plain seconds.
pub fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    }
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

/// `--host` values as written, for tests.
#[cfg(test)]
pub fn texts(flags: &[HostFlag]) -> Vec<String> {
    flags.iter().map(ToString::to_string).collect()
}
