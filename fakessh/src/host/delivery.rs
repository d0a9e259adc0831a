//! A shim's pipes and sockets, served by the host itself.
//!
//! A shim hands over those of its standard descriptors that are pipes or
//! sockets (with its session socket, in one SCM_RIGHTS message). The host
//! then reads stdin and writes stdout and stderr directly, and the shim
//! only waits for the exit status: bulk data crosses one process and one
//! socket fewer. With 64 sessions at once that copy, and the shim's
//! wake-ups, were most of what many sessions cost beyond one.
//!
//! [`Delivery`] is what the one client-end driver
//! ([`ClientEnd`](router::client_end::ClientEnd)) writes to: the
//! streams served here, and the shim for the rest.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use router::Router;
use router::client_end::{ClientEnd, ClientSink, StdinCounter};
use router::connection::FrameWriter;
use router::message::{ContextId, HOST_ID};
use router::session::{ClientSession, Ending, OutputStream, Side, ToClient};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::stats::SessionBytes;

use crate::fdstream::FdStream;

/// A session hello the host cannot use.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("ignored a control message: {0}")]
    Malformed(#[from] router::control::ControlError),
    #[error("ignored a request that is not a session here")]
    NotASession,
    #[error("a session hello without its session socket")]
    NoSocket,
}

/// The standard descriptors a shim handed over, as received.
#[derive(Default)]
pub struct PassedStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// One output stream as the host sees it.
enum Output {
    /// Still the shim's: its messages are forwarded.
    Shim,
    /// Handed over: written here.
    Served(FdStream),
    /// Handed over, and finished.
    Closed,
}

impl Output {
    fn new(fd: Option<OwnedFd>) -> std::io::Result<Output> {
        Ok(match fd {
            Some(fd) => Output::Served(FdStream::shared(fd)?),
            None => Output::Shim,
        })
    }

    fn side(&self) -> Side {
        match self {
            Output::Shim => Side::Forwarded,
            _ => Side::Local,
        }
    }
}

/// The client end of a shim's session on the host: the streams served
/// here, and the shim for the rest (and for the ending).
pub struct Delivery<W> {
    id: ContextId,
    /// The agent running the command, once the relay has named it.
    agent: Option<ContextId>,
    shim: Option<FrameWriter<W>>,
    outputs: [Output; 2],
    bytes: Arc<SessionBytes>,
}

/// The session's client end, delivering to a shim: `run` it with the
/// session's frames and the relay's [`News`].
pub type DeliveryEnd<W> = ClientEnd<Delivery<W>>;

impl<W: AsyncWrite + Send + Unpin> Delivery<W> {
    /// The client end for session `id`: it serves what the shim handed
    /// over (`stdio`) and forwards the rest to `shim`.
    pub fn start(
        router: Arc<Router>,
        id: ContextId,
        shim: FrameWriter<W>,
        stdio: PassedStdio,
        bytes: Arc<SessionBytes>,
    ) -> std::io::Result<DeliveryEnd<W>> {
        let outputs = [Output::new(stdio.stdout)?, Output::new(stdio.stderr)?];
        let stdin = stdio.stdin.map(FdStream::shared).transpose()?;
        let stdin_side = match stdin {
            Some(_) => Side::Local,
            None => Side::Forwarded,
        };
        let session = ClientSession::split(stdin_side, outputs[0].side(), outputs[1].side(), false);
        let counted = bytes.clone();
        let counter: StdinCounter = Arc::new(move |n| {
            counted
                .input
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        });
        let delivery = Delivery {
            id,
            agent: None,
            shim: Some(shim),
            outputs,
            bytes,
        };
        let end = ClientEnd::new(router, id, session, delivery);
        Ok(match stdin {
            Some(stdin) => end.stdin(stdin, Some(counter)),
            None => end,
        })
    }
}

impl<W: AsyncWrite + Send + Unpin> ClientSink for Delivery<W> {
    async fn write(&mut self, stream: OutputStream, data: Bytes) -> bool {
        match &mut self.outputs[stream.index()] {
            Output::Served(fd) => match fd.write_all(&data).await {
                Ok(()) => true,
                Err(e) => {
                    debug!("session {}: writing {stream:?}: {e}", self.id);
                    self.outputs[stream.index()] = Output::Closed;
                    false
                }
            },
            _ => false,
        }
    }

    async fn close(&mut self, stream: OutputStream) {
        let closed = std::mem::replace(&mut self.outputs[stream.index()], Output::Closed);
        if let (OutputStream::Stdout, Output::Served(mut out)) = (stream, closed) {
            // A half-close for a socket (scp and sftp read and write one),
            // a close for a pipe.
            let _ = out.shutdown().await;
        }
    }

    async fn forward(&mut self, msg: ToClient) {
        let frame = msg.to_frame(self.id, self.agent.unwrap_or(HOST_ID));
        if let Some(shim) = &mut self.shim
            && let Err(e) = shim.write_frame(&frame).await
        {
            debug!("session {}: shim gone: {e}", self.id);
            self.shim = None;
        }
    }

    /// The end: our copies of the served streams close before the shim
    /// hears it, as the client's own would when ssh exits.
    async fn finish(&mut self, ending: Ending) {
        for output in &mut self.outputs {
            if let Output::Served(_) = output {
                *output = Output::Closed;
            }
        }
        self.forward(ending.to_message()).await;
    }

    fn target(&mut self, agent: ContextId) {
        self.agent = Some(agent);
    }

    async fn stopped(&mut self) {
        if let Some(shim) = &mut self.shim {
            let _ = shim.shutdown().await;
        }
    }

    fn output_arrived(&mut self, len: usize) {
        self.bytes.add_output(len);
    }
}
