//! A new agent's first frames.
//!
//! The parent (host or agent) starts the child with its transport on the
//! child's stdin/stdout. The child says [`AgentHello`] on `CONTEXT_READY` as
//! soon as it runs, unasked; the parent sends [`AgentConfig`] as the first
//! frame and waits for that hello. Only then is the stream attached to the
//! router, so no frame is ever routed to a half-started context; and the
//! first session's frames follow the config at once (the hello did not wait
//! for the config: one round trip less per hop).

use std::time::Duration;

use router_core::connection::{FrameReader, FrameWriter, ReadError};
use router_core::frame::{Frame, Header};
use router_core::message::{AgentConfig, AgentHello, PayloadError, handle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

/// How long a new agent may take to say hello (and an agent, to be told
/// who it is).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    #[error("agent sent an unexpected first frame (handle {0})")]
    UnexpectedFrame(u32),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Send the config, wait for the hello.
pub async fn run<R, W>(
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    config: &AgentConfig,
) -> Result<(FrameReader<R>, FrameWriter<W>, AgentHello), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let first = Frame::cbor(
        Header {
            dst: config.context_id,
            src: config.parent_ids[0],
            auth: config.parent_ids[0],
            handle: handle::CONTEXT_READY,
            reply_to: 0,
        },
        config,
    );
    async {
        writer.write_frame(&first).await?;
        writer.flush().await
    }
    .await
    .map_err(HandshakeError::ConfigNotAccepted)?;
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, reader.read_frame())
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Startup)?
        .ok_or(HandshakeError::Exited)?;
    if reply.header.handle != handle::CONTEXT_READY {
        return Err(HandshakeError::UnexpectedFrame(reply.header.handle));
    }
    let hello: AgentHello = reply.decode_cbor("agent hello")?;
    Ok((reader, writer, hello))
}
