//! Why an ssh hop failed.

use super::auth::AuthError;
use crate::hop::bootstrap::BootstrapError;
use crate::hop::handshake::HandshakeError;
use ssh_config::ConfigError;

/// Why an ssh hop failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("connect to host {host} port {port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("connect to host {host} port {port}: timed out after {secs}s")]
    ConnectTimeout { host: String, port: u16, secs: u64 },
    #[error("no ssh handshake from {host} within {secs}s")]
    HandshakeTimeout { host: String, secs: u64 },
    /// Nothing in common between the user's crypto policy and the
    /// server's offer: OpenSSH's words.
    #[error("Unable to negotiate with {host} port {port}: {what}")]
    Negotiate {
        host: String,
        port: u16,
        what: String,
    },
    /// The crypto policy names nothing our client implements.
    #[error("{0}")]
    Policy(String),
    #[error("ssh handshake failed: {0}")]
    Handshake(russh::Error),
    /// The host key was refused; the text names the key and why.
    #[error("{0}")]
    HostKey(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot open a session channel: {0}")]
    Channel(russh::Error),
    #[error("cannot run the bootstrap: {0}")]
    Exec(russh::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot run ProxyCommand {command:?}: {source}")]
    ProxyCommand {
        command: String,
        source: std::io::Error,
    },
    #[error("ProxyJump {jump}: {source}")]
    Jump { jump: String, source: Box<SshError> },
    #[error("empty ProxyJump")]
    EmptyJump,
    #[error("ProxyJump {0:?}: {1}")]
    JumpSyntax(String, router::hop::HopSyntax),
    #[error("the jump host could not connect to {host}:{port}: {source}")]
    JumpChannel {
        host: String,
        port: u16,
        source: russh::Error,
    },
    /// The tunnel's far end said why it could not connect.
    #[error("{0}")]
    Tunnel(String),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    AgentHandshake(#[from] HandshakeError),
    /// What the remote printed on stderr adds to a failure.
    #[error("{failure} (remote said: {})", .lines.join(" | "))]
    Said {
        failure: Box<SshError>,
        lines: Vec<String>,
    },
}

impl SshError {
    /// Attach what the remote printed (nothing if it printed nothing).
    pub fn with_output(self, lines: Vec<String>) -> SshError {
        if lines.is_empty() {
            return self;
        }
        SshError::Said {
            failure: Box::new(self),
            lines,
        }
    }
}
