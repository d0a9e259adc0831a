//! Why a hop could not be started, and the hop it happened at.

use router::message::{ConnectFailure, PayloadError};
use router::text::sanitize_line;

use super::bootstrap::BootstrapError;
use super::handshake::HandshakeError;
use super::privilege::progress::Stall;
use super::privilege::pty::Refusal;
#[cfg(feature = "host")]
use super::ssh::error::SshError;

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
    /// A privilege hop's program stopped at a step (an unknown prompt, an
    /// answer that never came).
    #[error(transparent)]
    Stalled(#[from] Stall),
    #[cfg(feature = "host")]
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

    /// Attach what the far side printed (nothing if it printed nothing),
    /// escaped: it is remote text inside our message.
    pub fn with_output(self, lines: Vec<String>, remote: bool) -> HopFailure {
        if lines.is_empty() {
            return self;
        }
        HopFailure::Said {
            failure: Box::new(self),
            lines: lines.iter().map(|l| sanitize_line(l.as_bytes())).collect(),
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

    /// An agent's report: the agent may be in the hands of the remote's
    /// root, so its text is escaped before it reaches a terminal.
    pub fn from_wire(failure: ConnectFailure) -> HopFailure {
        HopFailure::Reported {
            message: sanitize_line(failure.message.as_bytes()),
            password_required: failure.password_required,
        }
    }

    /// A dead message instead of an answer; its reason is remote text.
    pub fn undeliverable(reason: &str) -> HopFailure {
        HopFailure::Undeliverable(sanitize_line(reason.as_bytes()))
    }

    /// Name the hop.
    pub fn at(self, hop: impl Into<String>) -> HopError {
        HopError {
            hop: hop.into(),
            failure: self,
        }
    }
}
