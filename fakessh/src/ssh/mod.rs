//! `ssh:` hops: an in-process russh client that verifies the host key,
//! authenticates, bootstraps our agent on the remote and hands its channel
//! to the router as a transport.
//!
//! Credentials never leave the host: when an ssh hop follows another hop,
//! the previous agent only opens the TCP connection (a tunnel session) and
//! the SSH handshake runs here, over that tunnel.

mod auth;
pub mod bootstrap;
pub mod config;
mod hostkey;
mod identity;
mod known_hosts;
mod packets;
pub mod proxy;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use router_core::connection::{FrameReader, FrameWriter};
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::{AgentConfig, AgentHello};
use russh::client::Handle;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use config::{HostConfig, SshConfig, local_user};
pub use hostkey::HostKeyCheck;
pub use transport::ChannelWriter;

/// A byte stream to an sshd: a TCP socket or a tunnel through another hop.
/// How long to wait for a TCP connection, and then for the key exchange,
/// without ConnectTimeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub trait SshStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> SshStream for T {}

/// What ssh hops need from the command line.
#[derive(Clone, Debug, Default)]
pub struct SshSettings {
    pub config: SshConfig,
    /// From --password-file: for ssh password authentication.
    pub password: Option<String>,
}

/// A started agent behind an ssh channel.
pub struct SshAgent {
    pub reader: FrameReader<transport::ChannelReader>,
    pub writer: FrameWriter<ChannelWriter>,
    pub hello: AgentHello,
    pub uploaded: bool,
}

/// Default keepalive when the config sets none: a dead link is noticed in
/// at most about 30 s.
const DEFAULT_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_ALIVE_COUNT: usize = 2;

/// Open the TCP connection for `cfg` (honouring ConnectTimeout).
pub async fn connect_tcp(name: &str, cfg: &HostConfig) -> Result<tokio::net::TcpStream, String> {
    let timeout = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let addr = (cfg.hostname.as_str(), cfg.port);
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| {
            format!(
                "{name}: connect to host {} port {}: timed out after {}s",
                cfg.hostname,
                cfg.port,
                timeout.as_secs()
            )
        })?
        .map_err(|e| {
            format!(
                "{name}: connect to host {} port {}: {}",
                cfg.hostname,
                cfg.port,
                plain_io(&e)
            )
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
    settings: &SshSettings,
) -> Result<Handle<HostKeyCheck>, String> {
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
    let mut handle = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| {
            format!(
                "{name}: no ssh handshake from {} within {}s",
                cfg.hostname,
                timeout.as_secs()
            )
        })?
        .map_err(|e| match verdict.lock().ok().and_then(|v| v.clone()) {
            Some(reason) => format!("{name}: {reason}"),
            None => format!("{name}: ssh handshake failed: {e}"),
        })?;
    let user = cfg.user.clone().unwrap_or_else(local_user);
    auth::authenticate(name, &mut handle, &user, cfg, settings.password.as_deref()).await?;
    info!("{name}: authenticated as {user}");
    Ok(handle)
}

/// Start our agent over a new session channel on `handle`.
pub async fn start_agent(
    name: &str,
    handle: Handle<HostKeyCheck>,
    agent_config: AgentConfig,
) -> Result<SshAgent, String> {
    let image = bootstrap::agent_image()?;
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("{name}: cannot open a session channel: {e}"))?;
    channel
        .exec(false, bootstrap::bootstrap_snippet(image))
        .await
        .map_err(|e| format!("{name}: cannot run the bootstrap: {e}"))?;
    let (mut reader, mut writer, stderr_tail) = transport::split(name, channel, handle);
    let booted = match bootstrap::run(name, &mut reader, &mut writer, image).await {
        Ok(b) => b,
        Err(e) => return Err(with_tail(e, &stderr_tail)),
    };
    let frame_reader = FrameReader::new(reader, DEFAULT_MAX_PAYLOAD);
    let frame_writer = FrameWriter::new(writer);
    let (frame_reader, frame_writer, hello) =
        crate::hop::handshake(name, frame_reader, frame_writer, &agent_config)
            .await
            .map_err(|e| with_tail(e, &stderr_tail))?;
    Ok(SshAgent {
        reader: frame_reader,
        writer: frame_writer,
        hello,
        uploaded: booted.uploaded,
    })
}

/// Append what the remote printed on stderr, which usually says why.
fn with_tail(err: String, tail: &transport::StderrTail) -> String {
    let lines = tail.lines();
    if lines.is_empty() {
        err
    } else {
        format!("{err} (remote said: {})", lines.join(" | "))
    }
}
