//! Starting an agent for one hop and completing its handshake.
//!
//! The parent (host or agent) starts the child with its transport on the
//! child's stdin/stdout, sends [`AgentConfig`] as the first frame and waits
//! for [`AgentHello`] on `CONTEXT_READY`. Only then is the stream attached to
//! the router, so no frame is ever routed to a half-started context.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use router_core::connection::{FrameReader, FrameWriter};
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Frame, Header};
use router_core::message::{AgentConfig, AgentHello, ConnectFailure, HopKind, Secret, handle};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};

/// Environment variable naming another program to run as the first `local`
/// agent; for the reliability tests only.
pub const AGENT_PROGRAM_ENV: &str = "MITOGEN_FAKESSH_TEST_AGENT_PROGRAM";

/// How long a new agent may take to say hello.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A started, handshaken agent, ready to attach.
pub struct StartedAgent {
    pub child: Child,
    pub reader: FrameReader<OwnedReadHalf>,
    pub writer: FrameWriter<OwnedWriteHalf>,
    pub hello: AgentHello,
}

/// Start a hop of `kind` from this process: `local`, or sudo/su/doas under
/// the hybrid pty (which may need `password`).
pub async fn start(
    kind: &HopKind,
    password: Option<&Secret>,
    config: AgentConfig,
) -> Result<StartedAgent, ConnectFailure> {
    match kind {
        HopKind::Local => start_local(config).await.map_err(ConnectFailure::new),
        _ => crate::privilege::start(kind, password, config).await,
    }
}

/// Start our own executable in agent mode as the same user (`local` hop).
pub async fn start_local(config: AgentConfig) -> Result<StartedAgent, String> {
    let name = config.name.clone();
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("{name}: socketpair: {e}"))?;
    // Testing hook: the reliability tests put a deliberately misbehaving
    // agent here to prove the host and its other agents withstand it.
    let exe = match std::env::var_os(AGENT_PROGRAM_ENV) {
        Some(p) if config.parent_ids == [router_core::message::HOST_ID] => {
            std::path::PathBuf::from(p)
        }
        _ => std::env::current_exe()
            .map_err(|e| format!("{name}: cannot find our own executable: {e}"))?,
    };
    let theirs_out: OwnedFd = theirs
        .try_clone()
        .map_err(|e| format!("{name}: dup: {e}"))?
        .into();
    let child = Command::new(&exe)
        .arg(crate::AGENT_ARG)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C meant for the wrapped command must
        // not kill the agents underneath it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{name}: cannot start agent {}: {e}", exe.display()))?;
    ours.set_nonblocking(true)
        .map_err(|e| format!("{name}: {e}"))?;
    let stream = tokio::net::UnixStream::from_std(ours).map_err(|e| format!("{name}: {e}"))?;
    let (r, w) = stream.into_split();
    let reader = FrameReader::new(r, DEFAULT_MAX_PAYLOAD);
    let writer = FrameWriter::new(w);
    let (reader, writer, hello) = handshake(&name, reader, writer, &config).await?;
    Ok(StartedAgent {
        child,
        reader,
        writer,
        hello,
    })
}

/// Send the config, wait for the hello.
pub async fn handshake<R, W>(
    name: &str,
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    config: &AgentConfig,
) -> Result<(FrameReader<R>, FrameWriter<W>, AgentHello), String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
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
    .map_err(|e| format!("{name}: agent did not accept its configuration: {e}"))?;
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, reader.read_frame())
        .await
        .map_err(|_| {
            format!(
                "{name}: agent did not answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{name}: agent start-up failed: {e}"))?
        .ok_or_else(|| format!("{name}: agent exited before it was ready"))?;
    if reply.header.handle != handle::CONTEXT_READY || reply.header.src != config.context_id {
        return Err(format!(
            "{name}: agent sent an unexpected first frame (handle {})",
            reply.header.handle
        ));
    }
    let hello: AgentHello = reply
        .decode_cbor("agent hello")
        .map_err(|e| format!("{name}: {e}"))?;
    Ok((reader, writer, hello))
}
