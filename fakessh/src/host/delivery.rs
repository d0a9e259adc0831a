//! A shim's pipes and sockets, served by the host itself.
//!
//! A shim hands over those of its standard descriptors that are pipes or
//! sockets (with its session socket, in one SCM_RIGHTS message). The host
//! then reads stdin and writes stdout and stderr directly, and the shim
//! only waits for the exit status: bulk data crosses one process and one
//! socket fewer. With 64 sessions at once that copy, and the shim's
//! wake-ups, were most of what many sessions cost beyond one.
//!
//! [`Delivery`] drives the client end's state machine
//! ([`ClientSession`](router_core::session::ClientSession)) for the streams
//! served here and forwards the rest to the shim.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use super::stats::SessionBytes;
use router_core::Router;
use router_core::connection::FrameWriter;
use router_core::frame::Frame;
use router_core::message::{ContextId, HOST_ID, handle};
use router_core::pump::{SendWindow, pump_to_frames};
use router_core::router::FrameInbox;
use router_core::session::message::handover;
use router_core::session::{
    self, ClientAction, ClientSession, Ending, OutputStream, SESSION_WINDOW, SessionControl,
    SessionEvent, Side, ToClient, ToCommand, WindowTuner,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

use crate::fdstream::FdStream;

/// A session hello the host cannot use.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("ignored a message that is not a session hello ({0:?})")]
    NotAHello(Vec<u8>),
    #[error("a session hello without its session socket")]
    NoSocket,
    #[error("session hello announces descriptors {bits:#04b} but carries {count}")]
    Mismatch { bits: u8, count: usize },
}

/// The standard descriptors a shim handed over, as received.
#[derive(Default)]
pub struct PassedStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl PassedStdio {
    /// Match the hello's handover bits with the descriptors that came after
    /// the session socket; any mismatch is a broken shim.
    pub fn from_hello(bits: u8, fds: Vec<OwnedFd>) -> Result<PassedStdio, HelloError> {
        let all = handover::STDIN | handover::STDOUT | handover::STDERR;
        if bits & !all != 0 || fds.len() != bits.count_ones() as usize {
            return Err(HelloError::Mismatch {
                bits,
                count: fds.len(),
            });
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

/// What the relay tells the delivery.
#[derive(Debug)]
pub enum FromRelay {
    /// The context asked to run the session, before it was asked: the
    /// router takes this session's frames from it alone.
    Target(ContextId),
    /// The shim's credit for the streams it kept.
    ShimCredit(SessionControl),
}

/// A handed-over stdin and the credit window the host reads it under.
pub type ServedStdin = (FdStream, SendWindow);

/// Serves everything addressed to one shim session.
pub struct Delivery<W> {
    router: Arc<Router>,
    id: ContextId,
    /// The agent running the command, once the relay has asked it.
    agent: Option<ContextId>,
    shim: Option<FrameWriter<W>>,
    outputs: [Output; 2],
    stdin_window: Option<SendWindow>,
    session: ClientSession,
    /// Grow stdout's and stderr's windows with the path (served ones only).
    tuners: [WindowTuner; 2],
    bytes: Arc<SessionBytes>,
}

impl<W: AsyncWrite + Unpin> Delivery<W> {
    /// The delivery, and the handed-over stdin (with its window) for the
    /// session's stdin pump.
    pub fn new(
        router: Arc<Router>,
        id: ContextId,
        shim: FrameWriter<W>,
        stdio: PassedStdio,
        bytes: Arc<SessionBytes>,
    ) -> std::io::Result<(Delivery<W>, Option<ServedStdin>)> {
        let outputs = [Output::new(stdio.stdout)?, Output::new(stdio.stderr)?];
        let stdin = match stdio.stdin {
            Some(fd) => Some((FdStream::shared(fd)?, SendWindow::new(SESSION_WINDOW))),
            None => None,
        };
        let stdin_side = if stdin.is_some() {
            Side::Local
        } else {
            Side::Forwarded
        };
        let session = ClientSession::split(stdin_side, outputs[0].side(), outputs[1].side(), false);
        let delivery = Delivery {
            router,
            id,
            agent: None,
            shim: Some(shim),
            outputs,
            stdin_window: stdin.as_ref().map(|(_, w)| w.clone()),
            session,
            tuners: Default::default(),
            bytes,
        };
        Ok((delivery, stdin))
    }

    /// Deliver until the session ends or its stream is removed. `relay`
    /// names the target and carries the shim's credit for the streams it
    /// kept.
    pub async fn run(mut self, mut frames: FrameInbox, mut relay: mpsc::Receiver<FromRelay>) {
        loop {
            tokio::select! {
                // The relay first: it names the target before asking it, and
                // queues the shim's credit here before it passes it on to
                // the agent, so the agent's answer to it can never be
                // counted against a window not yet released.
                biased;
                Some(news) = relay.recv() => match news {
                    FromRelay::Target(agent) => {
                        self.agent = Some(agent);
                        let now = Instant::now();
                        self.tuners.iter_mut().for_each(|t| t.asked(now));
                    }
                    FromRelay::ShimCredit(control) => self.session.on_shim_control(&control),
                },
                frame = frames.recv() => {
                    let Some(frame) = frame else { break };
                    if matches!(frame.header.handle, handle::SESSION_STDOUT | handle::SESSION_STDERR) {
                        self.bytes.add_output(frame.payload.len());
                    }
                    let taken = self.session.on_frame(&frame);
                    if let Err(e) = taken {
                        let why = format!("the agent broke the session protocol: {e}");
                        self.send_control(SessionControl::Close).await;
                        self.forward(&ToClient::Event(SessionEvent::Error(why))).await;
                        break;
                    }
                    self.tune(&frame);
                }
            }
            while let Some(action) = self.session.next_action() {
                self.act(action).await;
            }
            if self.session.is_finished() {
                break;
            }
        }
        if let Some(shim) = &mut self.shim {
            let _ = shim.shutdown().await;
        }
    }

    /// A frame from the command end arrived: measure, and grow an output's
    /// window when the path holds more than it (see `session::autotune`).
    fn tune(&mut self, frame: &Frame) {
        let now = Instant::now();
        let stream = match frame.header.handle {
            handle::SESSION_STDOUT => OutputStream::Stdout,
            handle::SESSION_STDERR => OutputStream::Stderr,
            _ => {
                self.tuners.iter_mut().for_each(|t| t.heard(now));
                return;
            }
        };
        let (window, waiting) = self.session.output_window(stream);
        let tuner = &mut self.tuners[stream.index()];
        if let Some(to) = tuner.on_output(now, frame.payload.len(), window, waiting) {
            let rtt = tuner.rtt();
            if self.session.grow_output(stream, to) {
                debug!(
                    "session {}: {stream:?} window {window} -> {to} bytes (round trip {rtt:?})",
                    self.id
                );
            }
        }
    }

    async fn act(&mut self, action: ClientAction) {
        match action {
            ClientAction::Write { stream, data, cost } => {
                let ok = match &mut self.outputs[stream.index()] {
                    Output::Served(fd) => match fd.write_all(&data).await {
                        Ok(()) => true,
                        Err(e) => {
                            debug!("session {}: writing {stream:?}: {e}", self.id);
                            self.outputs[stream.index()] = Output::Closed;
                            false
                        }
                    },
                    _ => false,
                };
                self.session.written(stream, cost, ok);
            }
            ClientAction::CloseOutput(stream) => {
                let closed = std::mem::replace(&mut self.outputs[stream.index()], Output::Closed);
                if let (OutputStream::Stdout, Output::Served(mut out)) = (stream, closed) {
                    // A half-close for a socket (scp and sftp read and write
                    // one), a close for a pipe.
                    let _ = out.shutdown().await;
                }
            }
            ClientAction::GrantStdin(n) => {
                if let Some(window) = &self.stdin_window
                    && let Err(e) = window.grant(n)
                {
                    debug!("session {}: {e}", self.id);
                    window.close();
                }
            }
            ClientAction::Forward(msg) => self.forward(&msg).await,
            ClientAction::Send(control) => self.send_control(control).await,
            ClientAction::Finish(ending) => self.finish(ending).await,
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
        if let Some(window) = &self.stdin_window {
            window.close();
        }
        self.forward(&ending.to_message()).await;
    }

    async fn forward(&mut self, msg: &ToClient) {
        let frame = msg.to_frame(self.id, self.agent.unwrap_or(HOST_ID));
        if let Some(shim) = &mut self.shim
            && let Err(e) = shim.write_frame(&frame).await
        {
            debug!("session {}: shim gone: {e}", self.id);
            self.shim = None;
        }
    }

    async fn send_control(&self, control: SessionControl) {
        if let Some(agent) = self.agent {
            let frame = ToCommand::Control(control).to_frame(agent, self.id);
            self.router.send(frame).await;
        }
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
    bytes: Arc<SessionBytes>,
) {
    let header = session::header(agent, id, handle::SESSION_STDIN);
    match pump_to_frames(stdin, &window, &router, header).await {
        Ok(n) => bytes
            .input
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed),
        Err(e) => {
            debug!("session {id}: reading stdin: {e}");
            0
        }
    };
    if !window.is_closed() {
        let eof = ToCommand::Control(SessionControl::Eof);
        router.send(eof.to_frame(agent, id)).await;
    }
}
