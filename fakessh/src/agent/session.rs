//! One session on the agent: a single task drives the command end's state
//! machine ([`CommandSession`]) over the command's pipes (or pty, or TCP
//! socket), the way sshd serves a channel from one poll loop.
//!
//! Why one task: with a task per stream, a message the command wrote to
//! stderr just before its last stdout bytes could reach the client after
//! them. rsync shows why that matters: its client reads the server's final
//! status on stdout, exits, and kills `ssh` with SIGUSR1 on the way out, so
//! the server's "Permission denied" on stderr was lost about one time in
//! seven. Here stderr is always read first.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use router::Router;
use router::message::ContextId;
use router::pump::BulkSender;
use router::session::{
    CommandAction, CommandSession, DATA_CHUNK, ExitStatus, GrowthBudget, OutputStream,
    SESSION_QUEUE, STDIN_GROWTH_BUDGET, SessionEvent, ToClient, ToCommand,
};
use router::session_link::SessionLink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::command::{BoxedRead, BoxedWrite, SpawnError, Started};
use crate::sys;

/// How long a pty's output may go on after its command exited (a
/// background process may hold the terminal forever).
const PTY_LINGER: Duration = Duration::from_secs(5);

/// What this agent's sessions may grow their stdin windows by, all
/// together ([`CommandSession::sharing_stdin_growth`]).
pub static STDIN_GROWTH: GrowthBudget = GrowthBudget::new(STDIN_GROWTH_BUDGET);

/// The agent's handle on a running session.
pub struct SessionHandle {
    /// Messages from the client, in order.
    pub inbox: mpsc::Sender<ToCommand>,
    /// The command's process group, for signals at shutdown.
    pub pgid: Option<Pid>,
}

impl SessionHandle {
    /// Signal the command's whole process group.
    pub fn signal(&self, sig: Signal) {
        signal_group(self.pgid, sig);
    }
}

fn signal_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(pgid) = pgid {
        debug!("signalling process group {pgid} with {sig}");
        let _ = killpg(pgid, sig);
    }
}

/// A session for client `peer` whose command or connection `starting`
/// brings up: its handle, and the task that drives it until it is done
/// (which returns `peer`). The inbox exists at once, so messages that
/// arrive while a connection is being made wait there.
pub fn start(
    router: Arc<Router>,
    peer: ContextId,
    machine: CommandSession,
    pgid: Option<Pid>,
    starting: impl Future<Output = Result<Started, SpawnError>> + Send + 'static,
) -> (SessionHandle, SessionTask) {
    let (inbox, rx) = mpsc::channel(SESSION_QUEUE);
    let task = async move {
        let started = match starting.await {
            Ok(started) => started,
            Err(e) => {
                // A forwarded connection refused: news for -v, as in OpenSSH.
                info!("session {peer}: {e}");
                refuse(&router, peer, e.to_string()).await;
                return peer;
            }
        };
        Driver::new(router, peer, machine, rx, pgid, started)
            .run()
            .await
    };
    (SessionHandle { inbox, pgid }, Box::pin(task))
}

/// A session's task; it returns the session's client id.
pub type SessionTask = std::pin::Pin<Box<dyn Future<Output = ContextId> + Send>>;

/// The process group of a started command.
pub fn process_group(started: &Started) -> Option<Pid> {
    started
        .child
        .as_ref()
        .and_then(Child::id)
        .map(|p| Pid::from_raw(p as i32))
}

impl Driver {
    fn new(
        router: Arc<Router>,
        peer: ContextId,
        machine: CommandSession,
        inbox: mpsc::Receiver<ToCommand>,
        pgid: Option<Pid>,
        started: Started,
    ) -> Driver {
        Driver {
            link: SessionLink::command_end(router, peer),
            peer,
            machine,
            inbox,
            stdin: started.stdin,
            stdin_queue: VecDeque::new(),
            close_stdin: false,
            outputs: [started.stdout, started.stderr],
            bufs: [BytesMut::new(), BytesMut::new()],
            child: started.child,
            pgid,
            pty: started.pty,
            sent: [0, 0],
        }
    }
}

/// Tell a client its session could not start.
pub async fn refuse(router: &Arc<Router>, peer: ContextId, why: String) {
    let event = ToClient::Event(SessionEvent::Error(why));
    SessionLink::command_end(router.clone(), peer)
        .to_client(&event)
        .await;
}

/// What happened next.
enum Step {
    Message(Option<ToCommand>),
    Read(OutputStream, std::io::Result<usize>),
    Written(std::io::Result<usize>),
    Exited(std::io::Result<std::process::ExitStatus>),
    Linger,
    /// An output's pace allows its next frame now.
    Paced,
}

struct Driver {
    link: SessionLink,
    peer: ContextId,
    machine: CommandSession,
    inbox: mpsc::Receiver<ToCommand>,
    stdin: Option<BoxedWrite>,
    /// Stdin data not yet written, with its credit cost.
    stdin_queue: VecDeque<(Bytes, u32)>,
    /// Close stdin once the queue is written.
    close_stdin: bool,
    outputs: [Option<BoxedRead>; 2],
    bufs: [BytesMut; 2],
    child: Option<Child>,
    pgid: Option<Pid>,
    pty: Option<OwnedFd>,
    sent: [u64; 2],
}

impl Driver {
    async fn run(mut self) -> ContextId {
        let mut sender = BulkSender::new();
        let mut exited_at: Option<tokio::time::Instant> = None;
        while !self.machine.is_done() {
            let step = sender.next(self.next_step(exited_at)).await;
            match step {
                Step::Message(None) => break,
                Step::Message(Some(msg)) => {
                    if let Err(e) = self.machine.on_message(msg) {
                        warn!("session {}: {e}", self.peer);
                        self.kill();
                        self.machine
                            .fail(format!("the session broke its protocol: {e}"));
                    }
                }
                Step::Read(stream, Ok(n)) if n > 0 => {
                    let data = self.bufs[stream.index()].split().freeze();
                    if self.machine.sent(stream, n, Instant::now()) {
                        self.sent[stream.index()] += n as u64;
                        let frame = self.link.client_frame(&ToClient::Output(stream, data));
                        self.link.send_bulk(&mut sender, frame).await;
                    }
                }
                // End of file; a pty master reads EIO once the command's
                // side is closed.
                Step::Read(stream, _) => {
                    self.outputs[stream.index()] = None;
                    self.machine.output_ended(stream);
                    if self.child.is_none() && stream == OutputStream::Stdout {
                        // A TCP connection ends with its stream.
                        self.machine.exited(ExitStatus::Code(0));
                    }
                }
                Step::Written(result) => self.stdin_written(result),
                Step::Exited(status) => {
                    exited_at = Some(tokio::time::Instant::now());
                    self.exited(status)
                }
                Step::Linger => self.machine.abandon_outputs(),
                Step::Paced => {}
            }
            while let Some(action) = self.machine.next_action() {
                self.act(action).await;
            }
        }
        info!(
            "session {}: done, {} bytes stdout, {} bytes stderr",
            self.peer, self.sent[0], self.sent[1]
        );
        self.peer
    }

    /// Wait for the next thing to do: a message, output that the credit
    /// and the pace allow us to send (stderr first), room on stdin, the
    /// command's exit.
    async fn next_step(&mut self, exited_at: Option<tokio::time::Instant>) -> Step {
        let now = Instant::now();
        let mut paced: Option<Instant> = None;
        // A stream with credit may still wait for its pace; one without
        // waits for credit (a message) alone.
        let mut can_read = |s: OutputStream| {
            let room = self.machine.sendable(s, DATA_CHUNK);
            if room == 0 {
                return 0;
            }
            match self.machine.output_ready_at(s, now) {
                Some(at) => {
                    paced = Some(paced.map_or(at, |p| p.min(at)));
                    0
                }
                None => room,
            }
        };
        let (out_room, err_room) = (
            can_read(OutputStream::Stdout),
            can_read(OutputStream::Stderr),
        );
        let [out, err] = &mut self.outputs;
        let [out_buf, err_buf] = &mut self.bufs;
        let stdin_ready = self.stdin.is_some() && !self.stdin_queue.is_empty();
        let running = self.child.is_some() && exited_at.is_none();
        let child = self.child.as_mut().filter(|_| exited_at.is_none());
        let linger = exited_at
            .filter(|_| self.pty.is_some())
            .map(|t| t + PTY_LINGER);
        tokio::select! {
            biased;
            msg = self.inbox.recv() => Step::Message(msg),
            r = read(err, err_buf, err_room), if err.is_some() && err_room > 0 => {
                Step::Read(OutputStream::Stderr, r)
            }
            r = read(out, out_buf, out_room), if out.is_some() && out_room > 0 => {
                Step::Read(OutputStream::Stdout, r)
            }
            w = write_some(&mut self.stdin, &self.stdin_queue), if stdin_ready => Step::Written(w),
            status = wait(child), if running => {
                Step::Exited(status)
            }
            _ = tokio::time::sleep_until(linger.unwrap_or_else(tokio::time::Instant::now)), if linger.is_some() => Step::Linger,
            _ = tokio::time::sleep_until(paced.unwrap_or(now).into()), if paced.is_some() => Step::Paced,
        }
    }

    fn stdin_written(&mut self, result: std::io::Result<usize>) {
        let result = match result {
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            other => other,
        };
        match result {
            Ok(mut n) => {
                while n > 0 {
                    let Some((front, cost)) = self.stdin_queue.front_mut() else {
                        break;
                    };
                    let step = n.min(front.len());
                    front.advance(step);
                    n -= step;
                    if front.is_empty() {
                        let cost = *cost;
                        self.stdin_queue.pop_front();
                        self.machine.stdin_written(cost);
                    }
                }
            }
            Err(e) => {
                // The command stopped reading: what was queued is credited,
                // and later stdin is dropped as it comes.
                debug!("session {}: stdin: {e}", self.peer);
                self.stdin = None;
                for (_, cost) in std::mem::take(&mut self.stdin_queue) {
                    self.machine.stdin_written(cost);
                }
            }
        }
    }

    fn exited(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        match status {
            Ok(st) => {
                let status = match (st.code(), st.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal {
                        signal,
                        core_dumped: st.core_dumped(),
                    },
                    (None, None) => ExitStatus::Code(255),
                };
                info!("session {}: {status:?}", self.peer);
                self.machine.exited(status)
            }
            Err(e) => self
                .machine
                .fail(format!("waiting for the command failed: {e}")),
        }
    }

    async fn act(&mut self, action: CommandAction) {
        match action {
            CommandAction::WriteStdin { data, cost } => {
                if self.stdin.is_some() {
                    self.stdin_queue.push_back((data, cost));
                } else {
                    // Nobody reads stdin any more: credit it at once.
                    self.machine.stdin_written(cost);
                }
            }
            CommandAction::CloseStdin => {
                self.close_stdin = true;
            }
            CommandAction::CloseOutput(stream) => {
                self.outputs[stream.index()] = None;
                if self.child.is_none() && stream == OutputStream::Stdout {
                    // A TCP connection nobody reads any more is over.
                    self.machine.exited(ExitStatus::Code(0));
                }
            }
            CommandAction::Signal(n) => match Signal::try_from(n) {
                Ok(sig) => signal_group(self.pgid, sig),
                Err(_) => warn!("session {}: unknown signal {n}", self.peer),
            },
            CommandAction::Resize(size) => {
                if let Some(master) = &self.pty {
                    let _ = sys::set_window_size(master.as_fd(), size.cols, size.rows);
                }
            }
            CommandAction::Kill => self.kill(),
            CommandAction::Send(event) => {
                self.link.to_client(&ToClient::Event(event)).await;
            }
        }
        if self.close_stdin && self.stdin_queue.is_empty() {
            self.close_stdin = false;
            if let Some(mut stdin) = self.stdin.take() {
                let _ = stdin.shutdown().await;
            }
        }
    }

    /// The client is gone or the session broke: end the command for good.
    fn kill(&mut self) {
        signal_group(self.pgid, Signal::SIGHUP);
        signal_group(self.pgid, Signal::SIGKILL);
        self.outputs = [None, None];
        self.stdin = None;
    }
}

/// Read at most `room` bytes of one output into its buffer (cancel-safe).
async fn read(
    reader: &mut Option<BoxedRead>,
    buf: &mut BytesMut,
    room: usize,
) -> std::io::Result<usize> {
    let Some(reader) = reader else {
        return Ok(0);
    };
    buf.reserve(room);
    reader.read_buf(&mut (&mut *buf).limit(room)).await
}

/// Write some of the queued stdin (cancel-safe).
async fn write_some(
    stdin: &mut Option<BoxedWrite>,
    queue: &VecDeque<(Bytes, u32)>,
) -> std::io::Result<usize> {
    match (stdin, queue.front()) {
        (Some(w), Some((data, _))) => w.write(data).await,
        _ => Ok(0),
    }
}

async fn wait(child: Option<&mut Child>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}
