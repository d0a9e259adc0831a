//! The client end of a session, driven: the one async driver of
//! [`ClientSession`] on the router, which the host's delivery to a shim
//! and the host's tunnels (an ssh hop's TCP connection through another
//! context) both configure. (The shim is the other driver: synchronous,
//! over the same machine.)
//!
//! It owns the machine and does what it says: writes the output this end
//! serves, passes the rest on ([`ClientSink`]), and sends credit and
//! controls to the agent. If this end serves stdin, a second task reads it
//! into data frames as the machine's stdin credit allows, taking turns with
//! the other bulk senders on the way ([`crate::pump::BulkSender`]): a write of output
//! that waits for its reader never stops stdin (the driver still takes the
//! frames that come meanwhile, stdin's credit among them), and stdin that
//! waits for credit never stops output, as in OpenSSH's client (a tunnel
//! carries an ssh connection whose two directions depend on each other). Stdin's end
//! of file, credit and the session's ending are the machine's decisions,
//! made once in [`proto::session`]; both tasks ask it, under its lock,
//! which is never held across a wait.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::router::{FrameInbox, Router, RouterEvent, StreamId};
use crate::session_link::SessionLink;
use proto::frame::Frame;
use proto::message::{ContextId, handle};
use proto::session::autotune::MIN_TUNED_RTT;
use proto::session::{
    ClientAction, ClientSession, Ending, MAX_SESSION_WINDOW, OutputStream, SESSION_WINDOW,
    SessionControl, StdinPacer, ToClient, ToCommand, WindowTuner, frame_cost,
};

mod stdin;

/// The most (in frame cost) the driver takes from the inbox while an
/// output write waits for its reader: both outputs' windows at their
/// largest, and a window's worth of events and credit besides. An agent
/// within its windows never reaches it.
const TAKEN_WHILE_WRITING: usize = (2 * MAX_SESSION_WINDOW + SESSION_WINDOW) as usize;
pub use stdin::StdinCounter;
use stdin::{Shared, Stdin, pump_stdin};

/// Where a client end's output and news go.
pub trait ClientSink: Send {
    /// Write `data` to `stream`, which this end serves; false when nobody
    /// reads it any more.
    fn write(&mut self, stream: OutputStream, data: Bytes) -> impl Future<Output = bool> + Send;
    /// `stream` ended: half-close a socket, close a pipe.
    fn close(&mut self, stream: OutputStream) -> impl Future<Output = ()> + Send;
    /// A message for whoever serves the streams this end does not (the
    /// shim).
    fn forward(&mut self, msg: ToClient) -> impl Future<Output = ()> + Send;
    /// The session is over, after all its output was written.
    fn finish(&mut self, ending: Ending) -> impl Future<Output = ()> + Send;
    /// The context that runs the command (it is named before it is asked).
    fn target(&mut self, _agent: ContextId) {}
    /// The driver stopped, for whatever reason: nothing more comes.
    fn stopped(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// `len` bytes of output arrived (for accounting).
    fn output_arrived(&mut self, _len: usize) {}
}

/// A task aborted when this is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the driver hears besides the session's frames.
#[derive(Debug)]
pub enum News {
    /// The context that runs the command, before it is asked: credit and
    /// controls go to it from now on.
    Target(ContextId),
    /// The command was asked for (its SPAWN is on its way): stdin may
    /// follow it.
    Spawned,
    /// The shim's credit for the streams it serves itself.
    ShimControl(SessionControl),
}

/// How the driver stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The ending was handed to the sink.
    Finished,
    /// The session's frames stopped coming (its stream was removed).
    Closed,
    /// The agent was lost before the session ended (see
    /// [`ClientEnd::watch_agent`]).
    Lost(String),
}

/// One client end on the router.
pub struct ClientEnd<S> {
    router: Arc<Router>,
    /// The session's id: the `src` of what it sends.
    id: ContextId,
    agent: Option<ContextId>,
    /// The command was asked for: stdin may be sent.
    spawned: bool,
    shared: Arc<Shared>,
    /// The stdin to read, until its task starts.
    stdin: Option<(Stdin, Option<StdinCounter>)>,
    /// Stopped when the driver is dropped (a relay whose shim died drops
    /// it mid-session): its stdin must not stay open behind it.
    stdin_task: Option<AbortOnDrop>,
    events: Option<broadcast::Receiver<RouterEvent>>,
    /// The session stream whose inbox widens with the windows.
    inbox: Option<StreamId>,
    /// Fit stdout's and stderr's windows to the path
    /// ([`proto::session::autotune`]; the machine grows only the outputs
    /// this end writes itself).
    tuners: [WindowTuner; 2],
    sink: S,
}

/// One thing that happened.
enum Step {
    News(News),
    NewsClosed,
    Frame(Option<Frame>),
    Lost(String),
}

impl<S: ClientSink> ClientEnd<S> {
    /// A client end for session `id` whose streams `session` says who
    /// serves; `sink` takes what this end serves or passes on.
    pub fn new(router: Arc<Router>, id: ContextId, session: ClientSession, sink: S) -> Self {
        ClientEnd {
            router,
            id,
            agent: None,
            spawned: false,
            shared: Arc::new(Shared {
                session: Mutex::new(session),
                changed: Notify::new(),
                rtt: OnceLock::new(),
                pacer: Mutex::new(StdinPacer::new()),
            }),
            stdin: None,
            stdin_task: None,
            events: None,
            inbox: None,
            tuners: Default::default(),
            sink,
        }
    }

    /// The context that runs the command, already asked for it.
    pub fn spawned_on(mut self, agent: ContextId) -> Self {
        self.agent = Some(agent);
        self.spawned = true;
        self.asked(Instant::now());
        self
    }

    /// The command end was asked now: the round trip is timed from here.
    fn asked(&mut self, now: Instant) {
        self.tuners.iter_mut().for_each(|t| t.asked(now));
    }

    /// Read stdin from `reader` (the session's stdin is served here),
    /// telling `counter` what went out.
    pub fn stdin(
        mut self,
        reader: impl AsyncRead + Send + Sync + Unpin + 'static,
        counter: Option<StdinCounter>,
    ) -> Self {
        self.stdin = Some((Box::new(reader), counter));
        self
    }

    /// The session stream `sid` the frames come in on: its inbox widens as
    /// the windows grow (without it, no window grows).
    pub fn inbox(mut self, sid: StreamId) -> Self {
        self.inbox = Some(sid);
        self
    }

    /// Stop with [`Stopped::Lost`] when the agent's context is lost.
    pub fn watch_agent(mut self) -> Self {
        self.events = Some(self.router.subscribe());
        self
    }

    /// Drive the session until it ends or its frames stop.
    pub async fn run(mut self, frames: FrameInbox, news: mpsc::Receiver<News>) -> Stopped {
        let stopped = self.drive(frames, news).await;
        self.stdin_task = None;
        self.sink.stopped().await;
        stopped
    }

    async fn drive(&mut self, mut frames: FrameInbox, mut news: mpsc::Receiver<News>) -> Stopped {
        let mut news_open = true;
        loop {
            self.start_stdin();
            let step = self.next_step(&mut frames, &mut news, news_open).await;
            match step {
                Step::News(News::Target(agent)) => {
                    self.agent = Some(agent);
                    self.sink.target(agent);
                    self.asked(Instant::now());
                }
                Step::News(News::Spawned) => self.spawned = true,
                Step::NewsClosed => news_open = false,
                Step::News(News::ShimControl(control)) => {
                    self.shared.lock().on_shim_control(&control)
                }
                Step::Frame(None) => return Stopped::Closed,
                Step::Frame(Some(frame)) => {
                    let taken = take_frame(&self.shared, &frame);
                    if let Some(stopped) = self.taken(&frame, taken).await {
                        return stopped;
                    }
                }
                Step::Lost(why) => return Stopped::Lost(why),
            }
            loop {
                let action = self.shared.lock().next_action();
                let Some(action) = action else { break };
                if let Some(stopped) = self.act(action, &mut frames).await {
                    return stopped;
                }
            }
            if self.shared.lock().is_done() {
                return Stopped::Finished;
            }
        }
    }

    /// Start reading stdin once the command was asked for.
    fn start_stdin(&mut self) {
        if !self.spawned || self.stdin_task.is_some() {
            return;
        }
        let Some(link) = self.link() else { return };
        let Some((reader, counter)) = self.stdin.take() else {
            return;
        };
        let shared = self.shared.clone();
        let task = tokio::spawn(pump_stdin(shared, link, reader, counter));
        self.stdin_task = Some(AbortOnDrop(task));
    }

    /// Wait for the next thing: news first (the target before the frames
    /// it answers), then the session's frames, and the agent's loss if
    /// watched.
    async fn next_step(
        &mut self,
        frames: &mut FrameInbox,
        news: &mut mpsc::Receiver<News>,
        news_open: bool,
    ) -> Step {
        let agent = self.agent;
        tokio::select! {
            biased;
            n = news.recv(), if news_open => match n {
                Some(n) => Step::News(n),
                None => Step::NewsClosed,
            },
            frame = frames.recv() => Step::Frame(frame),
            why = agent_lost(&mut self.events, agent, &self.router), if self.events.is_some() => {
                Step::Lost(why)
            }
        }
    }

    /// A frame from the command end arrived: measure (the round trip, for
    /// stdin's window too), and grow an output's window when the path
    /// holds more than it (or lower it once, as its slow start ends).
    fn tune(&mut self, frame: &Frame) {
        let now = Instant::now();
        self.tuners.iter_mut().for_each(|t| t.heard(now));
        if let Some(rtt) = self.tuners.iter().find_map(|t| t.rtt()) {
            let _ = self.shared.rtt.set(rtt);
        }
        // Stdin's timings, if any, are the path's own round trip; the
        // tuners' include the command's start, and a window tuned on too
        // long a round trip stands too long a queue at the bottleneck.
        // (Below MIN_TUNED_RTT nothing is tuned: no lock per frame there.)
        let tuned = self
            .tuners
            .iter()
            .any(|t| t.rtt().is_some_and(|r| r >= MIN_TUNED_RTT));
        let timed = match tuned {
            true => self.shared.pacer().base_rtt(),
            false => None,
        };
        if let Some(rtt) = timed {
            self.tuners.iter_mut().for_each(|t| t.measured(rtt));
        }
        let stream = match frame.header.handle {
            handle::SESSION_STDOUT => OutputStream::Stdout,
            handle::SESSION_STDERR => OutputStream::Stderr,
            _ => return,
        };
        let Some(sid) = self.inbox else { return };
        let mut session = self.shared.lock();
        let (window, waiting) = session.output_window(stream);
        let tuner = &mut self.tuners[stream.index()];
        if let Some(to) = tuner.on_output(now, frame.payload.len(), window, waiting) {
            let rtt = tuner.rtt();
            if to < window {
                if session.shrink_output(stream, to) {
                    tracing::debug!(
                        "session {}: {stream:?} window {window} -> {to} bytes, the path full (round trip {rtt:?})",
                        self.id
                    );
                }
            } else if let Some(grown) = session.grow_output(stream, to) {
                // Room for the grown window before the agent hears of it.
                self.router.widen_session_inbox(sid, grown as usize);
                tracing::debug!(
                    "session {}: {stream:?} window {window} -> {to} bytes (round trip {rtt:?})",
                    self.id
                );
            }
        }
    }

    /// What follows a frame the machine took (`taken`): the output counted,
    /// the windows tuned, or the end if it broke the protocol.
    async fn taken(
        &mut self,
        frame: &Frame,
        taken: Result<(), proto::session::ProtocolError>,
    ) -> Option<Stopped> {
        if matches!(
            frame.header.handle,
            handle::SESSION_STDOUT | handle::SESSION_STDERR
        ) {
            self.sink.output_arrived(frame.payload.len());
        }
        if let Err(e) = taken {
            let why = format!("the agent broke the session protocol: {e}");
            self.send_control(SessionControl::Close).await;
            self.sink.finish(Ending::Error(why)).await;
            return Some(Stopped::Finished);
        }
        self.tune(frame);
        None
    }

    /// Carry out `action`. While output waits for its reader, the frames
    /// that come are still taken: stdin's credit among them, which the
    /// stdin task waits for. (A tunnel's output is the transport that
    /// writes its stdin: if neither moved until the other did, they would
    /// wait for each other for ever.)
    async fn act(&mut self, action: ClientAction, frames: &mut FrameInbox) -> Option<Stopped> {
        match action {
            ClientAction::Write { stream, data, cost } => {
                let mut came = Vec::new();
                let mut came_cost = 0;
                let mut closed = false;
                // Once the agent broke the protocol, or what was taken
                // reached the bound (an agent within its windows never
                // does), frames wait in the inbox, whose own bound cuts a
                // flood off.
                let mut broke = false;
                let ok = {
                    let write = self.sink.write(stream, data);
                    tokio::pin!(write);
                    loop {
                        let take = !closed && !broke && came_cost <= TAKEN_WHILE_WRITING;
                        tokio::select! {
                            biased;
                            ok = &mut write => break ok,
                            frame = frames.recv(), if take => match frame {
                                Some(frame) => {
                                    let taken = take_frame(&self.shared, &frame);
                                    came_cost += frame_cost(frame.payload.len()) as usize;
                                    broke = taken.is_err();
                                    came.push((frame, taken));
                                }
                                None => closed = true,
                            },
                        }
                    }
                };
                self.shared.lock().written(stream, cost, ok);
                for (frame, taken) in came {
                    if let Some(stopped) = self.taken(&frame, taken).await {
                        return Some(stopped);
                    }
                }
                if closed {
                    return Some(Stopped::Closed);
                }
            }
            ClientAction::CloseOutput(stream) => self.sink.close(stream).await,
            ClientAction::Forward(msg) => self.sink.forward(msg).await,
            ClientAction::Send(control) => self.send_control(control).await,
            ClientAction::Finish(ending) => {
                self.stdin = None;
                // The machine says stdin is over now: its task ends.
                self.shared.changed.notify_waiters();
                self.sink.finish(ending).await;
            }
        }
        None
    }

    /// The link to the agent, once it is known.
    fn link(&self) -> Option<SessionLink> {
        let agent = self.agent?;
        Some(SessionLink::client_end(self.router.clone(), self.id, agent))
    }

    async fn send_control(&self, control: SessionControl) {
        if let Some(link) = self.link() {
            link.to_command(&ToCommand::Control(control)).await;
        }
    }
}

/// The machine takes `frame` (credit for the stdin task wakes it).
fn take_frame(shared: &Shared, frame: &Frame) -> Result<(), proto::session::ProtocolError> {
    let taken = {
        let mut session = shared.lock();
        let taken = session.on_frame(frame);
        let (_, in_flight) = session.stdin_window();
        shared.pacer().credited(in_flight, Instant::now());
        taken
    };
    shared.changed.notify_waiters();
    taken
}

/// Wait until `agent`'s context is lost; the reason.
async fn agent_lost(
    events: &mut Option<broadcast::Receiver<RouterEvent>>,
    agent: Option<ContextId>,
    router: &Router,
) -> String {
    let Some(events) = events else {
        return std::future::pending().await;
    };
    loop {
        match events.recv().await {
            Ok(RouterEvent::ContextLost { context, reason }) if Some(context) == agent => {
                return reason;
            }
            Err(broadcast::error::RecvError::Lagged(_))
                if agent.is_some_and(|a| !router.has_route(a)) =>
            {
                return "no route".into();
            }
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
            _ => {}
        }
    }
}
