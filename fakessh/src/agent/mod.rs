//! Agent mode: a context on the far side of a hop.
//!
//! The agent's transport is its stdin/stdout. It reads its [`AgentConfig`],
//! answers with [`AgentHello`], then routes frames: it runs sessions for
//! shims (on behalf of the host), starts further hops when an ancestor asks,
//! and exits, killing everything it started, when its parent goes away.
//!
//! - [`session`]: one session, driven by one task;
//! - [`command`]: starting a session's command (or TCP connection);
//! - [`login`]: the account we run as, and sshd's environment for it.

mod command;
mod forward;
mod lanes;
mod login;
mod session;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use router::Router;
use router::agent_request::{AGENT_HANDLES, AgentRequest, RequestError};
use router::connection::{FrameReader, FrameWriter, ReadError};
use router::frame::{DEFAULT_MAX_PAYLOAD, Frame};
use router::message::{AgentHello, ConnectFailure, ConnectRequest, ContextId, Handle};
use router::router::{RouterEvent, StreamRole};
use router::session::{CommandSession, SpawnRequest, ToCommand};
use tokio::process::Child;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::fdstream::FdStream;
use crate::hop::remote;
use login::{Login, LoginError};
use router::handshake;
use session::SessionHandle;

/// Frames for this agent that may wait for its main loop.
const INBOX: usize = 1024;

/// How often an agent gives the memory its allocator holds free back to
/// the system (see [`crate::sys::release_free_memory`]).
const MEMORY_TRIM: Duration = Duration::from_secs(10);

/// Why an agent could not run.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("{what}: {source}")]
    Transport {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("no configuration from the parent")]
    NoConfig,
    #[error("reading the configuration: {0}")]
    ConfigRead(ReadError),
    #[error("the parent closed the connection before configuring us")]
    ParentClosed,
    #[error(transparent)]
    Config(#[from] router::handshake::HandshakeError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error("sending hello: {0}")]
    Hello(std::io::Error),
}

/// Entry point for `mitogen-fakessh __agent`.
pub fn main() -> i32 {
    crate::sys::keep_bootstrap_fd_private();
    let result = crate::roles::runtime()
        .map_err(AgentError::Runtime)
        .and_then(|runtime| runtime.block_on(run()));
    match result {
        Ok(()) => 0,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh agent: {e}"));
            255
        }
    }
}

/// Take fds 0 and 1 as the transport and point the standard streams at
/// /dev/null, so nothing we start can write into the protocol by accident.
fn take_transport() -> Result<(FdStream, FdStream), AgentError> {
    let transport = |what| move |source| AgentError::Transport { what, source };
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(transport("dup stdin"))?;
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(transport("dup stdout"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(transport("/dev/null"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| transport("dup2")(e.into()))?;
    nix::unistd::dup2_stdout(&null).map_err(|e| transport("dup2")(e.into()))?;
    widen_pipe(&input);
    widen_pipe(&output);
    let input = FdStream::new(input).map_err(transport("transport input"))?;
    let output = FdStream::new(output).map_err(transport("transport output"))?;
    Ok((input, output))
}

/// Give the transport pipes (sshd's pipes to us, for an ssh hop) 1 MiB
/// instead of 64 KiB. Every session's data crosses them, and with 64 KiB
/// sshd and the agent wake each other for every 64 KiB; with 1 MiB they move
/// bigger batches: 14–17 % more throughput for one and for 64 sessions
/// (docs/BENCHMARKS.md). It costs 512 pages of the user's pipe allowance
/// (`fs.pipe-user-pages-soft`, 16384 by default); a refusal, or a transport
/// that is not a pipe, leaves the size as it was.
fn widen_pipe(fd: &OwnedFd) {
    const TRANSPORT_PIPE: i32 = 1 << 20;
    if let Err(e) = crate::sys::set_pipe_size(fd.as_fd(), TRANSPORT_PIPE) {
        debug!("transport pipe keeps its size: {e}");
    }
}

async fn run() -> Result<(), AgentError> {
    let (input, output) = take_transport()?;
    let mut reader = FrameReader::new(input, DEFAULT_MAX_PAYLOAD);
    let mut writer = FrameWriter::new(output);
    // Hello first, unasked: the parent's configuration and the first
    // session can then follow it without waiting a round trip.
    let login = Login::current()?;
    let hello = AgentHello {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        user: login.name.clone(),
    };
    writer
        .write_frame(&handshake::hello_frame(&hello))
        .await
        .and(writer.flush().await)
        .map_err(AgentError::Hello)?;
    let first = tokio::time::timeout(handshake::CONNECT_TIMEOUT, reader.read_frame())
        .await
        .map_err(|_| AgentError::NoConfig)?
        .map_err(AgentError::ConfigRead)?
        .ok_or(AgentError::ParentClosed)?;
    let config = handshake::check_config(&first)?;
    crate::logging::init(config.log_level, Some(&config.name));
    let router = Router::new(
        config.context_id,
        config.parent_ids.clone(),
        config.max_payload,
    );
    info!(
        "{}: agent up as context {} (user {})",
        config.name, config.context_id, login.name
    );
    // Lanes the host may add to our parent stream (an ssh hop's channel).
    let staged = router::lanes::Staged::default();
    let mut agent = Agent {
        router: router.clone(),
        login,
        name: config.name.clone(),
        sessions: HashMap::new(),
        session_tasks: JoinSet::new(),
        connects: JoinSet::new(),
        children: Vec::new(),
        forwards: Default::default(),
        lanes: lanes::Lanes::new(router.clone(), staged.clone()),
    };
    let mut events = router.subscribe();
    // One inbox, so frames are handled in the order they arrived: a spawn
    // before its session's stdin, stdin before its EOF.
    let mut inbox = router.register_inbox(&AGENT_HANDLES, INBOX);
    router
        .attach_with_lanes(
            &format!("parent of {}", config.name),
            config.parent_ids[0],
            StreamRole::Parent,
            reader,
            writer,
            staged,
        )
        .await;

    // An agent that only routes (the hop before a sudo hop) sees no
    // session end: give free memory back now and then instead.
    let mut trim = tokio::time::interval(MEMORY_TRIM);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            _ = trim.tick() => crate::sys::release_free_memory(),
            Some(f) = inbox.recv() => {
                let ancestors = router.parent_ids();
                match AgentRequest::from_frame(&f, router.my_id(), ancestors) {
                    Ok(AgentRequest::Spawn(req)) => agent.on_spawn(req).await,
                    Ok(AgentRequest::Connect { request, from, reply_to }) => {
                        agent.on_connect(request, from, reply_to)
                    }
                    Ok(AgentRequest::Session { peer, msg }) => agent.on_session_message(peer, msg).await,
                    Ok(AgentRequest::Lanes { request, from, reply_to }) => {
                        agent.lanes.on_request(request, from, reply_to).await
                    }
                    Ok(AgentRequest::JoinLanes { request, from, reply_to }) => {
                        agent.lanes.on_join(request, from, reply_to)
                    }
                    Ok(AgentRequest::Shutdown) => break "shutdown requested".to_string(),
                    Err(e) => agent.refuse(&f, e).await,
                }
            },
            Some(done) = agent.session_tasks.join_next(), if !agent.session_tasks.is_empty() => {
                if let Ok(peer) = done {
                    agent.sessions.remove(&peer);
                    agent.forwards.session_ended(peer);
                }
                if agent.sessions.is_empty() {
                    crate::sys::release_free_memory();
                }
            }
            Some(done) = agent.connects.join_next(), if !agent.connects.is_empty() => {
                if let Ok(Some(child)) = done {
                    agent.children.push(child);
                }
            }
            event = events.recv() => match event {
                Ok(RouterEvent::ParentLost { reason }) => break reason,
                Ok(RouterEvent::ContextLost { context, reason }) => debug!("context {context} lost: {reason}"),
                Err(RecvError::Lagged(n)) => debug!("missed {n} router events"),
                Err(RecvError::Closed) => break "router closed".to_string(),
            },
        }
    };
    info!(
        "{}: exiting ({reason}); ending {} session(s)",
        agent.name,
        agent.sessions.len()
    );
    agent.shutdown().await;
    Ok(())
}

struct Agent {
    router: Arc<Router>,
    login: Login,
    name: String,
    sessions: HashMap<ContextId, SessionHandle>,
    /// Each session's task; stopped when the agent goes.
    session_tasks: JoinSet<ContextId>,
    /// Hops being started below us.
    connects: JoinSet<Option<Child>>,
    children: Vec<Child>,
    /// Listeners held for clients, and what they accepted.
    forwards: forward::Forwards,
    /// Lanes of the parent stream: made, and staged once joined.
    lanes: lanes::Lanes,
}

impl Agent {
    /// A frame that is not a request we take: logged, and answered dead
    /// where its sender waits (a command from a context that may not
    /// command us).
    async fn refuse(&self, f: &Frame, e: RequestError) {
        warn!("{}: {e}", self.name);
        if let Some(why) = e.answer()
            && f.header.reply_to != 0
            && !f.is_dead()
        {
            self.router
                .send(Frame::dead(
                    self.router.my_id(),
                    f.header.src,
                    f.header.reply_to,
                    &why,
                ))
                .await;
        }
    }

    async fn on_spawn(&mut self, req: SpawnRequest) {
        let peer = req.peer;
        if self.sessions.contains_key(&peer) {
            return warn!("{}: duplicate session {peer}", self.name);
        }
        let router = self.router.clone();
        if let Some((handle, task)) = self.forwards.start(router.clone(), peer, &req.command) {
            info!("session {peer}: {}", req.command);
            self.sessions.insert(peer, handle);
            self.session_tasks.spawn(task);
            return;
        }
        let mut extra_env = Vec::new();
        if req.forward_agent {
            match self.forwards.agent_socket(router.clone(), peer) {
                Ok(path) => extra_env.push(("SSH_AUTH_SOCK".to_string(), path)),
                Err(e) => {
                    warn!("{}: session {peer}: {e}", self.name);
                    return session::refuse(&self.router, peer, e.to_string()).await;
                }
            }
        }
        let (handle, task) = match command::spawn(&self.login, &req, &extra_env) {
            Ok(started) => {
                info!("session {peer}: started {}", req.command);
                let pgid = session::process_group(&started);
                let machine = CommandSession::new(req.pty.is_some())
                    .sharing_stdin_growth(&session::STDIN_GROWTH);
                session::start(router, peer, machine, pgid, async { Ok(started) })
            }
            Err(e) => {
                warn!("{}: session {peer}: {e}", self.name);
                self.forwards.session_ended(peer);
                return session::refuse(&self.router, peer, e.to_string()).await;
            }
        };
        self.sessions.insert(peer, handle);
        self.session_tasks.spawn(task);
    }

    /// Stdin or a control message for a session, passed to its task.
    async fn on_session_message(&mut self, peer: ContextId, msg: ToCommand) {
        let Some(session) = self.sessions.get(&peer) else {
            return debug!("{msg:?} for unknown session {peer}");
        };
        match session.inbox.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => debug!("session {peer} is over"),
            Err(TrySendError::Full(_)) => {
                // Its queue is bounded by its credit: the sender ignored it.
                warn!("{}: session {peer} overran its queue; ending it", self.name);
                if let Some(session) = self.sessions.remove(&peer) {
                    session.signal(Signal::SIGKILL);
                }
                let why = router::session::ProtocolError::QueueFull.to_string();
                session::refuse(&self.router, peer, why).await;
            }
        }
    }

    /// Start another hop from here, in the background so sessions keep
    /// flowing, and answer on the request's reply handle.
    fn on_connect(&mut self, request: ConnectRequest, from: ContextId, reply_to: Handle) {
        let router = self.router.clone();
        self.connects.spawn(async move {
            let result = remote::serve(&router, request).await;
            let (child, reply): (Option<Child>, Result<(), ConnectFailure>) = match result {
                Ok(child) => (Some(child), Ok(())),
                Err(e) => (None, Err(e.to_wire())),
            };
            if reply_to != 0 {
                router
                    .send(Frame::cbor(router.header(from, reply_to), &reply))
                    .await;
            }
            child
        });
    }

    /// End every session (process groups first politely, then for good)
    /// and wait briefly for child agents, which see their parent go away.
    async fn shutdown(mut self) {
        for s in self.sessions.values() {
            s.signal(Signal::SIGHUP);
            s.signal(Signal::SIGTERM);
        }
        if !self.sessions.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for s in self.sessions.values() {
            s.signal(Signal::SIGKILL);
        }
        self.session_tasks.abort_all();
        self.connects.abort_all();
        self.router.close_all().await;
        for child in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
    }
}
