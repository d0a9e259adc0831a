//! `ssh:` hops: an in-process russh client that verifies the host key,
//! authenticates, bootstraps our agent on the remote and hands its channel
//! to the router as a transport.
//!
//! Credentials never leave the host: when an ssh hop follows another hop,
//! the previous agent only opens the TCP connection (a tunnel session) and
//! the SSH handshake runs here, over that tunnel.

mod auth;
pub mod config;
mod hostkey;
mod identity;
mod jump;
mod known_hosts;
mod packets;
mod proxy;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use router_core::connection::{FrameReader, FrameWriter};
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::AgentConfig;
use russh::client::Handle;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use super::{HopFailure, StartedAgent, bootstrap, handshake};
pub use auth::AuthError;
use config::{ConfigError, HostConfig, SshConfig, local_user};
pub use hostkey::HostKeyCheck;
pub use jump::Jumps;
pub use transport::{ChannelReader, ChannelWriter};

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
    /// From --password-file: for ssh password authentication.
    pub password: Option<String>,
}

/// An agent behind an ssh channel.
pub type SshAgent = StartedAgent<ChannelReader, ChannelWriter>;

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
    Jump {
        jump: String,
        source: Box<HopFailure>,
    },
    #[error("empty ProxyJump")]
    EmptyJump,
    #[error("ProxyJump {0:?}: {1}")]
    JumpSyntax(String, router_core::hop::HopSyntax),
    #[error("the jump host could not connect to {host}:{port}: {source}")]
    JumpChannel {
        host: String,
        port: u16,
        source: russh::Error,
    },
    /// The tunnel's far end said why it could not connect.
    #[error("{0}")]
    Tunnel(String),
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

/// The first ssh hop's stream: ProxyCommand, ProxyJump or plain TCP, the
/// first of the first two that the config names.
pub async fn direct_stream(
    name: &str,
    cfg: &HostConfig,
    config: &SshConfig,
    settings: &SshSettings,
    jumps: &Jumps,
) -> Result<Box<dyn SshStream>, HopFailure> {
    Ok(match (&cfg.proxy_command, &cfg.proxy_jump) {
        (Some(command), _) => Box::new(proxy::connect(command)?),
        (None, Some(list)) => Box::new(jumps.through(name, list, cfg, config, settings).await?),
        (None, None) => Box::new(connect_tcp(cfg).await?),
    })
}

/// SSH handshake, host key check and authentication over `stream`.
pub async fn open_session<S: SshStream>(
    name: &str,
    cfg: &HostConfig,
    stream: S,
    settings: &SshSettings,
) -> Result<Connection, SshError> {
    let mut config = russh::client::Config {
        keepalive_interval: Some(cfg.server_alive_interval.unwrap_or(DEFAULT_ALIVE_INTERVAL)),
        keepalive_max: cfg.server_alive_count_max.unwrap_or(DEFAULT_ALIVE_COUNT),
        nodelay: true,
        ..Default::default()
    };
    config.window_size = 8 << 20;
    // AES-GCM runs on AES-NI in ring and costs less CPU than chacha20 for
    // bulk data (rsync of gigabytes); every OpenSSH server offers both.
    config.preferred.cipher = std::borrow::Cow::Borrowed(&[
        russh::cipher::AES_128_GCM,
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_128_CTR,
    ]);
    let check = HostKeyCheck::new(cfg);
    config.preferred.key = check.key_order(&config.preferred.key).into();
    if check.wants_certificates() {
        config.preferred.host_key_certificates = config.preferred.key.clone();
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
        .map_err(|e| match verdict.lock().ok().and_then(|v| v.clone()) {
            Some(reason) => SshError::HostKey(reason),
            None => SshError::Handshake(e),
        })?;
    let user = cfg.user.clone().unwrap_or_else(local_user);
    auth::authenticate(
        name,
        &mut connection,
        &user,
        cfg,
        settings.password.as_deref(),
    )
    .await?;
    info!("{name}: authenticated as {user}");
    Ok(connection)
}

/// Start our agent over a new session channel on `connection`.
pub async fn start_agent(
    connection: Connection,
    agent_config: AgentConfig,
) -> Result<SshAgent, HopFailure> {
    let name = agent_config.name.clone();
    let image = bootstrap::agent_image()?;
    let channel = connection
        .channel_open_session()
        .await
        .map_err(SshError::Channel)?;
    channel
        .exec(false, bootstrap::bootstrap_snippet(image))
        .await
        .map_err(SshError::Exec)?;
    let (mut reader, mut writer, stderr_tail) = transport::split(&name, channel, connection);
    let booted = bootstrap::run(&name, &mut reader, &mut writer, image)
        .await
        .map_err(|e| HopFailure::from(e).with_output(stderr_tail.lines(), true))?;
    let (reader, writer, hello) = handshake::run(
        FrameReader::new(reader, DEFAULT_MAX_PAYLOAD),
        FrameWriter::new(writer),
        &agent_config,
    )
    .await
    .map_err(|e| HopFailure::from(e).with_output(stderr_tail.lines(), true))?;
    Ok(StartedAgent {
        reader,
        writer,
        hello,
        process: None,
        uploaded: booted.uploaded,
    })
}
