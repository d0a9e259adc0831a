//! A shim's pipes and sockets, served by the host itself.
//!
//! A shim hands over those of its standard descriptors that are pipes or
//! sockets (with its session socket, in one SCM_RIGHTS message). The host
//! then reads stdin and writes stdout and stderr directly, and the shim
//! only waits for the exit status: bulk data crosses one process and one
//! socket fewer. With 64 sessions at once that copy, and the shim's
//! wake-ups, were most of what many sessions cost beyond one.
//! Whatever stayed with the shim (a tty, a regular file) still goes to it
//! as frames, so [`Delivery`] does both.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use router_core::Router;
use router_core::connection::FrameWriter;
use router_core::frame::{Frame, Header};
use router_core::message::{
    ContextId, OutputStream, SessionControl, SessionEvent, handle, handover,
};
use router_core::pump::{SendWindow, pump_to_frames};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::fdstream::FdStream;

/// The standard descriptors a shim handed over, as received.
#[derive(Default)]
pub struct PassedStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl PassedStdio {
    /// Match the hello's [`handover`] bits with the descriptors that came
    /// after the session socket; any mismatch is a broken shim.
    pub fn from_hello(bits: u8, fds: Vec<OwnedFd>) -> Result<PassedStdio, String> {
        let all = handover::STDIN | handover::STDOUT | handover::STDERR;
        if bits & !all != 0 || fds.len() != bits.count_ones() as usize {
            return Err(format!(
                "session hello announces descriptors {bits:#04b} but carries {}",
                fds.len()
            ));
        }
        let mut fds = fds.into_iter();
        let mut take = |bit: u8| if bits & bit != 0 { fds.next() } else { None };
        Ok(PassedStdio {
            stdin: take(handover::STDIN),
            stdout: take(handover::STDOUT),
            stderr: take(handover::STDERR),
        })
    }
}

/// One output stream of a session, from the host's side.
enum Output {
    /// Still the shim's: forward the frames.
    Shim,
    /// Handed over: write it here.
    Served(FdStream),
    /// Handed over, and finished (EOF, or the reader went away).
    Closed,
}

impl Output {
    fn new(fd: Option<OwnedFd>) -> std::io::Result<Output> {
        Ok(match fd {
            Some(fd) => Output::Served(FdStream::shared(fd)?),
            None => Output::Shim,
        })
    }
}

/// Serves everything addressed to one shim session: output the host
/// writes itself, stdin credit for the host's own stdin pump, and frames
/// for the shim.
pub struct Delivery<W> {
    router: Arc<Router>,
    id: ContextId,
    shim: Option<FrameWriter<W>>,
    stdout: Output,
    stderr: Output,
    stdin_window: Option<SendWindow>,
    /// Stderr bytes the shim has written out, when stderr is the shim's
    /// and stdout ours; see [`Delivery::stderr_settled`].
    stderr_acks: Option<watch::Receiver<u64>>,
    stderr_forwarded: u64,
}

/// What [`Delivery::new`] hands back for the session's other tasks.
pub struct Served {
    pub stdin: Option<(FdStream, SendWindow)>,
    /// Count the shim's stderr credit here (when it matters).
    pub stderr_acks: Option<watch::Sender<u64>>,
}

impl<W: AsyncWrite + Unpin> Delivery<W> {
    pub fn new(
        router: Arc<Router>,
        id: ContextId,
        shim: FrameWriter<W>,
        stdio: PassedStdio,
    ) -> std::io::Result<(Delivery<W>, Served)> {
        let stdout = Output::new(stdio.stdout)?;
        let stderr = Output::new(stdio.stderr)?;
        let stdin = match stdio.stdin {
            Some(fd) => Some((
                FdStream::shared(fd)?,
                SendWindow::new(router_core::message::SESSION_WINDOW),
            )),
            None => None,
        };
        let (acks_tx, acks_rx) = match (&stdout, &stderr) {
            (Output::Served(_), Output::Shim) => {
                let (tx, rx) = watch::channel(0);
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let delivery = Delivery {
            router,
            id,
            shim: Some(shim),
            stdout,
            stderr,
            stdin_window: stdin.as_ref().map(|(_, w)| w.clone()),
            stderr_acks: acks_rx,
            stderr_forwarded: 0,
        };
        Ok((
            delivery,
            Served {
                stdin,
                stderr_acks: acks_tx,
            },
        ))
    }

    /// Deliver frames in arrival order until the session's stream is removed.
    pub async fn run(mut self, mut frames: mpsc::UnboundedReceiver<Frame>) {
        while let Some(frame) = frames.recv().await {
            self.on_frame(frame).await;
        }
        if let Some(shim) = &mut self.shim {
            let _ = shim.shutdown().await;
        }
    }

    async fn on_frame(&mut self, frame: Frame) {
        if frame.is_dead() {
            return self.forward(&frame).await;
        }
        match frame.header.handle {
            handle::SESSION_STDOUT if !matches!(self.stdout, Output::Shim) => {
                self.write_out(OutputStream::Stdout, frame).await
            }
            handle::SESSION_STDERR if !matches!(self.stderr, Output::Shim) => {
                self.write_out(OutputStream::Stderr, frame).await
            }
            handle::SESSION_STDERR => {
                self.stderr_forwarded += frame.payload.len() as u64;
                self.forward(&frame).await
            }
            handle::SESSION_EVENT => self.on_event(frame).await,
            _ => self.forward(&frame).await,
        }
    }

    async fn on_event(&mut self, frame: Frame) {
        let event = frame.decode_cbor::<SessionEvent>("session event");
        match event {
            Ok(SessionEvent::StdinCredit(n)) if self.stdin_window.is_some() => {
                if let Some(w) = &self.stdin_window {
                    w.grant(n);
                }
            }
            Ok(SessionEvent::Eof(OutputStream::Stdout)) if !matches!(self.stdout, Output::Shim) => {
                self.stderr_settled().await;
                if let Output::Served(mut out) = std::mem::replace(&mut self.stdout, Output::Closed)
                {
                    // A half-close for a socket (scp and sftp read and write
                    // one), a close for a pipe.
                    let _ = out.shutdown().await;
                }
            }
            Ok(SessionEvent::Eof(OutputStream::Stderr)) if !matches!(self.stderr, Output::Shim) => {
                self.stderr = Output::Closed;
            }
            Ok(SessionEvent::Exit(_) | SessionEvent::Error(_)) => {
                // Our copies close before the shim hears the end, as the
                // client's own would when ssh exits.
                self.stderr_settled().await;
                for out in [&mut self.stdout, &mut self.stderr] {
                    if let Output::Served(_) = out {
                        *out = Output::Closed;
                    }
                }
                if let Some(w) = &self.stdin_window {
                    w.close();
                }
                self.forward(&frame).await
            }
            _ => self.forward(&frame).await,
        }
    }

    /// Write a data frame to a handed-over stream, then credit the agent;
    /// a reader that went away is reported once (the command gets SIGPIPE).
    async fn write_out(&mut self, stream: OutputStream, frame: Frame) {
        if stream == OutputStream::Stdout {
            self.stderr_settled().await;
        }
        let out = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        let agent = frame.header.src;
        if let Output::Served(fd) = out
            && let Err(e) = fd.write_all(&frame.payload).await
        {
            debug!("session {}: writing {stream:?}: {e}", self.id);
            *out = Output::Closed;
            self.control(agent, &SessionControl::OutputClosed(stream));
        }
        self.control(
            agent,
            &SessionControl::Credit {
                stream,
                bytes: frame.payload.len() as u32,
            },
        );
    }

    /// Stderr that went to the shim is on the shim's stderr before anything
    /// more of ours reaches stdout: a client that reads the exit status on
    /// stdout and then kills ssh (rsync) must already have its message.
    async fn stderr_settled(&mut self) {
        let forwarded = self.stderr_forwarded;
        if let Some(acks) = &mut self.stderr_acks
            && *acks.borrow() < forwarded
        {
            // An error means the shim is gone; nothing is left to wait for.
            let _ = acks.wait_for(|n| *n >= forwarded).await;
        }
    }

    async fn forward(&mut self, frame: &Frame) {
        if let Some(shim) = &mut self.shim
            && let Err(e) = shim.write_frame(frame).await
        {
            debug!("session {}: shim gone: {e}", self.id);
            self.shim = None;
        }
    }

    fn control(&self, agent: ContextId, control: &SessionControl) {
        self.router.send(Frame::cbor(
            session_header(agent, self.id, handle::SESSION_CONTROL),
            control,
        ));
    }
}

/// A frame from session `id` to its agent.
pub fn session_header(agent: ContextId, id: ContextId, handle: u32) -> Header {
    Header {
        dst: agent,
        src: id,
        auth: id,
        handle,
        reply_to: 0,
    }
}

/// Read a handed-over stdin into the session under the agent's credit; EOF
/// (or a read error, as in OpenSSH) half-closes the command's stdin.
pub async fn pump_stdin(
    stdin: FdStream,
    window: SendWindow,
    router: Arc<Router>,
    agent: ContextId,
    id: ContextId,
) {
    let header = session_header(agent, id, handle::SESSION_STDIN);
    if let Err(e) = pump_to_frames(stdin, &window, &router, header).await {
        debug!("session {id}: reading stdin: {e}");
    }
    if !window.is_closed() {
        router.send(Frame::cbor(
            session_header(agent, id, handle::SESSION_CONTROL),
            &SessionControl::Eof,
        ));
    }
}
