//! The parent's half of a new agent's handshake, over its transport: the
//! frames and their checks are [`router::handshake`]'s; this sends,
//! waits (at most [`CONNECT_TIMEOUT`]) and says what went wrong.

use router::connection::{FrameReader, FrameWriter, ReadError};
use router::handshake::{self, check_hello, config_frame};
use router::message::{AgentConfig, AgentHello};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

pub use router::handshake::CONNECT_TIMEOUT;

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

/// Why a new agent did not come up.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("agent did not accept its configuration: {0}")]
    ConfigNotAccepted(std::io::Error),
    #[error("agent did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    #[error("agent start-up failed: {0}")]
    Startup(ReadError),
    #[error("agent exited before it was ready")]
    Exited,
    #[error(transparent)]
    Refused(#[from] handshake::HandshakeError),
}

/// The parent's half, over a transport: send the config, wait for the
/// hello ([`router::handshake`] says what each frame must be).
pub async fn run<R, W>(
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    config: &AgentConfig,
) -> Result<(FrameReader<R>, FrameWriter<W>, AgentHello), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async {
        writer.write_frame(&config_frame(config)).await?;
        writer.flush().await
    }
    .await
    .map_err(HandshakeError::ConfigNotAccepted)?;
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, reader.read_frame())
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Startup)?
        .ok_or(HandshakeError::Exited)?;
    let hello = check_hello(&reply)?;
    Ok((reader, writer, hello))
}
