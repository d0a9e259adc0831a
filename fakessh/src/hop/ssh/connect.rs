//! Connecting to an sshd: TCP, key exchange, host key verification and
//! authentication, the way OpenSSH's client does them.

use std::sync::Arc;
use std::time::Duration;

use russh::client::Handle;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use super::error::SshError;
use super::hostkey::HostKeyCheck;
use super::{algorithms, auth};
use ssh_config::{HostConfig, SshConfig, local_user};

/// How long to wait for a TCP connection, and then for the key exchange,
/// without ConnectTimeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default keepalive when the config sets none: a dead link is noticed in
/// at most about 30 s.
const DEFAULT_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_ALIVE_COUNT: usize = 2;

/// A byte stream to an sshd: a TCP socket, a tunnel through another hop,
/// a ProxyCommand or a jump host's channel.
pub trait SshStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> SshStream for T {}

/// An established ssh connection.
pub type Connection = Handle<HostKeyCheck>;

/// What ssh hops need from the command line.
#[derive(Clone, Debug, Default)]
pub struct SshSettings {
    pub config: SshConfig,
}

/// Open the TCP connection for `cfg` (honouring ConnectTimeout).
pub async fn connect_tcp(cfg: &HostConfig) -> Result<tokio::net::TcpStream, SshError> {
    let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let addr = (cfg.hostname.as_str(), cfg.port);
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| SshError::ConnectTimeout {
            host: cfg.hostname.clone(),
            port: cfg.port,
            secs: timeout.as_secs(),
        })?
        .map_err(|e| SshError::Connect {
            host: cfg.hostname.clone(),
            port: cfg.port,
            reason: plain_io(&e),
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn plain_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

/// SSH handshake, host key check and authentication over `stream`.
pub async fn open_session<S: SshStream>(
    name: &str,
    cfg: &HostConfig,
    stream: S,
) -> Result<Connection, SshError> {
    let mut config = russh::client::Config {
        keepalive_interval: Some(cfg.server_alive_interval.unwrap_or(DEFAULT_ALIVE_INTERVAL)),
        keepalive_max: cfg.server_alive_count_max.unwrap_or(DEFAULT_ALIVE_COUNT),
        nodelay: true,
        ..Default::default()
    };
    // The window sshd may fill towards us, for every session of the hop
    // together: twice what one session's output window grows to
    // (MAX_SESSION_WINDOW), so that one stream pulling at the path's
    // bandwidth-delay product never waits for it. It costs no memory:
    // russh re-opens it as data arrives, and what waits for us is bounded
    // by the reader's queue and each session's own window.
    config.window_size = 2 * router::session::MAX_SESSION_WINDOW;
    // The user's crypto policy (ssh_config and -o, -c, -m), else ours.
    if let Some(why) = cfg.unimplemented_policy() {
        return Err(SshError::Policy(why));
    }
    let policy = cfg.algorithms();
    config.preferred = algorithms::preferred(&policy, &config.preferred);
    let check = HostKeyCheck::new(cfg);
    if !policy.host_keys_configured {
        // As OpenSSH: without HostKeyAlgorithms, the types known_hosts
        // already holds for this host come first.
        config.preferred.key = check.key_order(&config.preferred.key).into();
    }
    // Certificates are asked for only when a CA is trusted for this host
    // (or the user named certificate algorithms).
    if !check.wants_certificates() && !policy.host_keys_configured {
        config.preferred.host_key_certificates = Vec::new().into();
    }
    let verdict = check.verdict();
    // A server (or a ProxyCommand) that never answers must not hang us: the
    // key exchange gets the connect timeout too, as OpenSSH gives it to the
    // banner exchange.
    let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let handshake = russh::client::connect_stream(Arc::new(config), stream, check);
    let mut connection = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| SshError::HandshakeTimeout {
            host: cfg.hostname.clone(),
            secs: timeout.as_secs(),
        })?
        .map_err(|e| match (verdict.lock().ok().and_then(|v| v.clone()), e) {
            (Some(reason), _) => SshError::HostKey(reason),
            (None, russh::Error::NoCommonAlgo { kind, theirs, .. }) => SshError::Negotiate {
                host: cfg.hostname.clone(),
                port: cfg.port,
                what: algorithms::no_match(&kind, &theirs),
            },
            (None, e) => SshError::Handshake(e),
        })?;
    let user = cfg.user.clone().unwrap_or_else(local_user);
    auth::authenticate(name, &mut connection, &user, cfg).await?;
    info!("{name}: authenticated as {user}");
    Ok(connection)
}
