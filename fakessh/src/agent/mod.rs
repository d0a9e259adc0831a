//! Agent mode: a context on the far side of a hop.
//!
//! The agent's transport is its stdin/stdout. It reads its [`AgentConfig`],
//! answers with [`AgentHello`], then routes frames: it runs sessions for
//! shims (on behalf of the host), starts further hops when an ancestor asks,
//! and exits, killing everything it started, when its parent goes away.

mod login;
mod output;
mod session;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use router_core::Router;
use router_core::connection::{FrameReader, FrameWriter};
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Frame};
use router_core::message::{
    AgentConfig, AgentHello, ConnectFailure, ConnectRequest, ContextId, SessionControl,
    SpawnRequest, handle,
};
use router_core::router::{RouterEvent, StreamRole};
use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::fdstream::FdStream;
use crate::hop;
use login::Login;
use session::{Input, Session};

/// Entry point for `mitogen-fakessh __agent`.
pub fn main() -> i32 {
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh agent: cannot start: {e}"));
            return 255;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => 0,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh agent: {e}"));
            255
        }
    }
}

/// Take fds 0 and 1 as the transport and point the standard streams at
/// /dev/null, so nothing we start can write into the protocol by accident.
fn take_transport() -> Result<(FdStream, FdStream), String> {
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("dup stdin: {e}"))?;
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("dup stdout: {e}"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("dup2: {e}"))?;
    nix::unistd::dup2_stdout(&null).map_err(|e| format!("dup2: {e}"))?;
    widen_pipe(&input);
    widen_pipe(&output);
    let input = FdStream::new(input).map_err(|e| format!("transport input: {e}"))?;
    let output = FdStream::new(output).map_err(|e| format!("transport output: {e}"))?;
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
    if let Err(e) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(TRANSPORT_PIPE)) {
        debug!("transport pipe keeps its size: {e}");
    }
}

async fn run() -> Result<(), String> {
    let (input, output) = take_transport()?;
    let mut reader = FrameReader::new(input, DEFAULT_MAX_PAYLOAD);
    let mut writer = FrameWriter::new(output);
    let first = tokio::time::timeout(hop::CONNECT_TIMEOUT, reader.read_frame())
        .await
        .map_err(|_| "no configuration from the parent".to_string())?
        .map_err(|e| format!("reading the configuration: {e}"))?
        .ok_or("the parent closed the connection before configuring us")?;
    let config: AgentConfig = first
        .decode_cbor("agent config")
        .map_err(|e| e.to_string())?;
    if config.parent_ids.is_empty() {
        return Err("configuration names no parent".into());
    }
    crate::logging::init(config.log_level, Some(&config.name));
    let login = Login::current()?;
    let router = Router::new(
        config.context_id,
        config.parent_ids.clone(),
        config.max_payload,
    );
    let hello = AgentHello {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        user: login.name.clone(),
    };
    writer
        .write_frame(&Frame::cbor(
            router.header(config.parent_ids[0], handle::CONTEXT_READY),
            &hello,
        ))
        .await
        .and(writer.flush().await)
        .map_err(|e| format!("sending hello: {e}"))?;
    info!(
        "{}: agent up as context {} (user {})",
        config.name, config.context_id, login.name
    );

    let mut agent = Agent {
        router: router.clone(),
        login,
        name: config.name.clone(),
        sessions: HashMap::new(),
        children: Vec::new(),
    };
    let mut events = router.subscribe();
    // One inbox, so frames are handled in the order they arrived: a spawn
    // before its session's stdin, stdin before its EOF.
    let mut inbox = router.register_inbox(&[
        handle::SPAWN,
        handle::CONNECT,
        handle::SESSION_STDIN,
        handle::SESSION_CONTROL,
        handle::SHUTDOWN,
    ]);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ContextId>();
    let (child_tx, mut child_rx) = mpsc::unbounded_channel::<Child>();
    router.attach(
        &format!("parent of {}", config.name),
        config.parent_ids[0],
        StreamRole::Parent,
        reader,
        writer,
    );

    let reason = loop {
        tokio::select! {
            Some(f) = inbox.recv() => match f.header.handle {
                handle::SPAWN => agent.on_spawn(f, &done_tx),
                handle::CONNECT => agent.on_connect(f, &child_tx),
                handle::SESSION_STDIN => agent.on_stdin(f),
                handle::SESSION_CONTROL => agent.on_control(f),
                _ => {
                    if agent.commanded_by_ancestor(&f, "shutdown") {
                        break "shutdown requested".to_string();
                    }
                }
            },
            Some(peer) = done_rx.recv() => { agent.sessions.remove(&peer); }
            Some(child) = child_rx.recv() => agent.children.push(child),
            Some(ev) = events.recv() => match ev {
                RouterEvent::ParentLost { reason } => break reason,
                RouterEvent::ContextLost { context, reason } => debug!("context {context} lost: {reason}"),
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
    sessions: HashMap<ContextId, Session>,
    children: Vec<Child>,
}

impl Agent {
    /// Commands are honoured only from an ancestor (Mitogen's
    /// has_parent_authority); anything else is logged and answered dead.
    fn commanded_by_ancestor(&self, f: &Frame, what: &str) -> bool {
        let auth = f.header.auth;
        if auth != self.router.my_id() && self.router.is_ancestor_or_self(auth) {
            return true;
        }
        warn!(
            "{}: refused {what} from context {auth}: not an ancestor",
            self.name
        );
        if f.header.reply_to != 0 && !f.is_dead() {
            self.router.send(Frame::dead(
                self.router.my_id(),
                f.header.src,
                f.header.reply_to,
                &format!("{what} refused by policy"),
            ));
        }
        false
    }

    fn on_spawn(&mut self, f: Frame, done: &mpsc::UnboundedSender<ContextId>) {
        if !self.commanded_by_ancestor(&f, "spawn") {
            return;
        }
        let req: SpawnRequest = match f.decode_cbor("spawn request") {
            Ok(r) => r,
            Err(e) => return warn!("{}: {e}", self.name),
        };
        if self.sessions.contains_key(&req.peer) {
            return warn!("{}: duplicate session {}", self.name, req.peer);
        }
        let peer = req.peer;
        match Session::start(&self.router, &self.login, req, done.clone()) {
            Ok(s) => {
                self.sessions.insert(peer, s);
            }
            Err(e) => warn!("{}: session {peer}: {e}", self.name),
        }
    }

    fn on_stdin(&mut self, f: Frame) {
        match self.sessions.get(&f.header.src) {
            Some(s) => {
                let _ = s.input.send(Input::Data(f.payload));
            }
            None => debug!("stdin for unknown session {}", f.header.src),
        }
    }

    fn on_control(&mut self, f: Frame) {
        let peer = f.header.src;
        let control: SessionControl = match f.decode_cbor("session control") {
            Ok(c) => c,
            Err(e) => return warn!("{}: session {peer}: {e}", self.name),
        };
        let Some(s) = self.sessions.get(&peer) else {
            return debug!("control {control:?} for unknown session {peer}");
        };
        match control {
            SessionControl::Eof => {
                let _ = s.input.send(Input::Eof);
            }
            SessionControl::Credit { stream, bytes } => s.credit(stream, bytes),
            SessionControl::OutputClosed(stream) => s.output_closed(stream),
            SessionControl::Signal(n) => match Signal::try_from(n) {
                Ok(sig) => s.signal(sig),
                Err(_) => warn!("{}: session {peer}: unknown signal {n}", self.name),
            },
            SessionControl::WindowChange(size) => s.window_change(size),
            SessionControl::Close => {
                s.kill();
                self.sessions.remove(&peer);
            }
        }
    }

    /// Start another hop from here, in the background so sessions keep
    /// flowing, and answer on the request's reply handle.
    fn on_connect(&mut self, f: Frame, children: &mpsc::UnboundedSender<Child>) {
        if !self.commanded_by_ancestor(&f, "connect") {
            return;
        }
        let router = self.router.clone();
        let me = self.name.clone();
        let children = children.clone();
        tokio::spawn(async move {
            let result = match f.decode_cbor::<ConnectRequest>("connect request") {
                Ok(req) => connect(&router, &me, req).await.map(|child| {
                    let _ = children.send(child);
                }),
                Err(e) => Err(ConnectFailure::new(e.to_string())),
            };
            if f.header.reply_to != 0 {
                router.send(Frame::cbor(
                    router.header(f.header.src, f.header.reply_to),
                    &result,
                ));
            }
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
            s.kill();
        }
        self.router.close_all();
        for child in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
    }
}

/// Start `req.hop` below this agent and attach it as a child stream (which
/// announces the new route up to the host).
async fn connect(
    router: &Arc<Router>,
    me: &str,
    req: ConnectRequest,
) -> Result<Child, ConnectFailure> {
    let mut parent_ids = vec![router.my_id()];
    parent_ids.extend_from_slice(router.parent_ids());
    let config = AgentConfig {
        context_id: req.new_id,
        parent_ids,
        max_payload: router.max_payload(),
        log_level: req.log_level,
        name: req.name.clone(),
    };
    let started = hop::start(&req.hop, req.password.as_ref(), config).await?;
    let pid = started.hello.pid;
    router.attach(
        &req.name,
        req.new_id,
        StreamRole::Child,
        started.reader,
        started.writer,
    );
    info!(
        "{me}: started {} as context {} (pid {pid})",
        req.name, req.new_id
    );
    Ok(started.child)
}
