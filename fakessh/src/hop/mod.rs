//! Hops: starting the next context from where the previous one stands.
//!
//! - [`local`]: our own executable in agent mode, as the same user;
//! - [`privilege`]: sudo, su and doas under the hybrid pty;
//! - [`ssh`]: the in-process ssh client (config, known_hosts, host keys,
//!   authentication, transport), always run by the host;
//! - [`bootstrap`]: getting the agent running on the far side of an ssh
//!   channel or a privilege change;
//! - [`handshake`]: a new agent's first frames;
//! - [`remote`]: asking an agent to start a hop below itself;
//! - [`tunnel`]: a TCP connection made by an agent, carrying the next ssh hop.
//!
//! The hop itself is [`router_core::hop::Hop`], the same type from the
//! chain grammar to the wire.

pub mod bootstrap;
pub mod handshake;
pub mod local;
pub mod privilege;
pub mod remote;
pub mod ssh;
pub mod tunnel;

use router_core::connection::{FrameReader, FrameWriter};
use router_core::hop::Hop;
use router_core::message::{AgentConfig, AgentHello, ConnectFailure, PayloadError, Secret};
use tokio::process::Child;

pub use bootstrap::BootstrapError;
pub use handshake::HandshakeError;
pub use privilege::Refusal;
pub use ssh::SshError;

/// A hop that could not be started, named the way the user knows it
/// (`ssh:web1`, `sudo:root on ssh:web1`). The name is added here, once.
#[derive(Debug, thiserror::Error)]
#[error("{hop}: {failure}")]
pub struct HopError {
    pub hop: String,
    pub failure: HopFailure,
}

/// Why a hop could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HopFailure {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// What the program on the far side printed adds to a failure.
    #[error("{failure} ({} said: {})", if *.remote { "remote" } else { "it" }, .lines.join(" | "))]
    Said {
        failure: Box<HopFailure>,
        lines: Vec<String>,
        remote: bool,
    },
    /// The agent that was to start the hop reported this.
    #[error("{message}")]
    Reported {
        message: String,
        password_required: bool,
    },
    #[error("no answer from the previous hop")]
    NoAnswer,
    #[error("no answer within {0}s")]
    Silent(u64),
    #[error("connection attempt abandoned")]
    Abandoned,
    #[error("{0}")]
    Undeliverable(String),
    #[error("an ssh hop is started by the host, not by an agent")]
    SshFromAgent,
    #[error("a password is required and there is no terminal to ask on; use --password-file FILE")]
    NoTerminalForPassword,
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl HopFailure {
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> HopFailure {
        move |source| HopFailure::Io { what, source }
    }

    /// The hop asked for a password and none was given: the host may ask
    /// the user and try again.
    pub fn password_required(&self) -> bool {
        match self {
            HopFailure::Refused(refusal) => refusal.password_required(),
            HopFailure::Reported {
                password_required, ..
            } => *password_required,
            HopFailure::Said { failure, .. } => failure.password_required(),
            _ => false,
        }
    }

    /// Attach what the far side printed (nothing if it printed nothing).
    pub fn with_output(self, lines: Vec<String>, remote: bool) -> HopFailure {
        if lines.is_empty() {
            return self;
        }
        HopFailure::Said {
            failure: Box::new(self),
            lines,
            remote,
        }
    }

    /// The form in which an agent reports the failure to its parent.
    pub fn to_wire(&self) -> ConnectFailure {
        ConnectFailure {
            message: self.to_string(),
            password_required: self.password_required(),
        }
    }

    pub fn from_wire(failure: ConnectFailure) -> HopFailure {
        HopFailure::Reported {
            message: failure.message,
            password_required: failure.password_required,
        }
    }

    /// Name the hop.
    pub fn at(self, hop: impl Into<String>) -> HopError {
        HopError {
            hop: hop.into(),
            failure: self,
        }
    }
}

/// A started, handshaken agent, ready to attach to the router.
pub struct StartedAgent<R, W> {
    pub reader: FrameReader<R>,
    pub writer: FrameWriter<W>,
    pub hello: AgentHello,
    /// The process this side started, kept so it is reaped (none for an
    /// ssh hop: sshd started it).
    pub process: Option<Child>,
    /// Whether the agent's executable had to be uploaded.
    pub uploaded: bool,
}

/// The halves of a Unix socket to a local agent process.
pub type LocalAgent =
    StartedAgent<tokio::net::unix::OwnedReadHalf, tokio::net::unix::OwnedWriteHalf>;

/// Start `hop` from this process (the host for a chain's first hop, an agent
/// for later ones). ssh hops never start here: the host makes them itself.
pub async fn start(
    hop: &Hop,
    password: Option<&Secret>,
    config: AgentConfig,
) -> Result<LocalAgent, HopFailure> {
    match hop {
        Hop::Local => local::start(config).await,
        Hop::Sudo { .. } | Hop::Su { .. } | Hop::Doas { .. } => {
            privilege::start(hop, password, config).await
        }
        Hop::Ssh { .. } => Err(HopFailure::SshFromAgent),
    }
}
