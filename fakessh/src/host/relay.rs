//! One shim session on the host, from request to teardown.
//!
//! The host is the shims' only authority: a shim can ask for a session, and
//! the host (an ancestor of every agent) decides where it runs and issues the
//! spawn itself. After that the shim's stdin and control frames are
//! re-addressed to the target agent with the session's own id as `src` and
//! `auth`; the agent's output comes back to that id through the router.
//!
//! [`Relay`] owns everything the session started (a `JoinSet`): however the
//! session ends, dropping it stops them.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use router::Router;
use router::connection::{FrameReader, FrameWriter, ReadError};
use router::frame::Frame;
use router::hop::{Chain, Hop};
use router::message::{ContextId, HOST_ID, handle};
use router::pump::BulkSender;
use router::router::{RouterEvent, StreamId};
use router::session::message::DecodeError;
use router::session::{
    ExitStatus, OutputStream, RemoteCommand, SESSION_QUEUE, SessionControl, SessionEvent,
    SessionRequest, SpawnRequest, ToClient, ToCommand,
};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::connector::Connector;
use super::delivery::{Delivery, PassedStdio};
use super::stats::SessionGuard;
use router::client_end::News;
use router::session_link::SessionLink;

/// How long a session that ended on our side may take to tell the shim why.
const LAST_WORDS: Duration = Duration::from_secs(5);

/// How a session ended.
enum End {
    /// The shim closed its socket (normally after the exit status).
    ShimLeft,
    /// It ended here, for this reason, which the shim is told.
    Failed(String),
}

/// Serve one shim session from request to end.
pub async fn serve(
    sock: OwnedFd,
    stdio: PassedStdio,
    id: ContextId,
    router: Arc<Router>,
    connector: Arc<Connector>,
) {
    let guard = connector.stats.session();
    let Some(mut relay) = Relay::open(sock, stdio, id, router, connector, guard).await else {
        return;
    };
    let end = relay.run().await;
    relay.close(end).await;
}

struct Relay {
    id: ContextId,
    name: String,
    router: Arc<Router>,
    connector: Arc<Connector>,
    sid: StreamId,
    reader: FrameReader<OwnedReadHalf>,
    events: broadcast::Receiver<RouterEvent>,
    /// The delivery (the session's client end): stopped when the relay is
    /// dropped.
    tasks: JoinSet<()>,
    /// The target, and the shim's credit for the streams it kept, for the
    /// delivery.
    to_delivery: mpsc::Sender<News>,
    target: Option<(ContextId, Chain)>,
    /// The hostname the session asked for, once it has a target.
    host: String,
    /// Counts the session open, its bytes, and its context's use.
    guard: SessionGuard,
}

impl Relay {
    /// Attach the shim's socket as a stream and start delivering to it.
    async fn open(
        sock: OwnedFd,
        stdio: PassedStdio,
        id: ContextId,
        router: Arc<Router>,
        connector: Arc<Connector>,
        guard: SessionGuard,
    ) -> Option<Relay> {
        let name = format!("session {id}");
        let std_stream = std::os::unix::net::UnixStream::from(sock);
        let stream = match std_stream
            .set_nonblocking(true)
            .and_then(|_| tokio::net::UnixStream::from_std(std_stream))
        {
            Ok(s) => s,
            Err(e) => {
                warn!("{name}: {e}");
                return None;
            }
        };
        let (r, w) = stream.into_split();
        let events = router.subscribe();
        let (sid, frames) = router.add_session_stream(&name, id).await;
        let bytes = guard.bytes.clone();
        let delivery = match Delivery::start(router.clone(), id, FrameWriter::new(w), stdio, bytes)
        {
            Ok(d) => d.inbox(sid),
            Err(e) => {
                // The shim sees its socket close and exits 255.
                warn!("{name}: cannot serve the shim's stdio: {e}");
                router.remove_stream(sid, "unusable stdio").await;
                return None;
            }
        };
        let (to_delivery, relay_rx) = mpsc::channel(SESSION_QUEUE);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            delivery.run(frames, relay_rx).await;
        });
        Some(Relay {
            id,
            reader: FrameReader::new(r, router.max_payload()),
            name,
            router,
            connector,
            sid,
            events,
            tasks,
            to_delivery,
            target: None,
            host: String::new(),
            guard,
        })
    }

    /// Take the request, start the command, relay until the end.
    async fn run(&mut self) -> End {
        let request = match self.reader.read_frame().await {
            Ok(Some(frame)) => SessionRequest::from_frame(&frame),
            Ok(None) => return End::ShimLeft,
            Err(e) => {
                warn!("{}: {e}", self.name);
                return End::ShimLeft;
            }
        };
        let mut request = match request {
            Ok(r) => r,
            Err(e @ DecodeError::NotARequest(_)) => {
                warn!("{}: {e}", self.name);
                return End::ShimLeft;
            }
            Err(e) => return End::Failed(e.to_string()),
        };
        // As OpenSSH checks its command line: before any chain is built or
        // any token expanded (a `%h` in a `Match exec` or `ProxyCommand`).
        if !ssh_config::valid_hostname(&request.host) {
            return End::Failed("hostname contains invalid characters".into());
        }
        if request
            .user
            .as_deref()
            .is_some_and(|u| !ssh_config::valid_user(u))
        {
            return End::Failed("remote username contains invalid characters".into());
        }
        if let RemoteCommand::Master { command, quiet } = request.command {
            let (stderr, code) =
                super::master::answer(&self.connector, &request, command, quiet).await;
            return self.answer(stderr, code).await;
        }
        let (chain, connected) = match self.connector.connect_for(&request).await {
            Ok(routed) => routed,
            Err(e) => return End::Failed(e.to_string()),
        };
        let target = match connected {
            Ok(t) => t,
            Err(e) => {
                let why = naming_host(&request.host, &e.hop, e.to_string());
                return End::Failed(match self.connector.routing.unmapped_hint(&request.host) {
                    Some(hint) => format!("{why}\n{hint}"),
                    None => why,
                });
            }
        };
        info!(
            "{}: {} on {chain} ({})",
            self.name, request.host, request.command
        );
        self.connector
            .forwarding
            .apply(&self.name, &chain, &mut request);
        self.host = request.host.clone();
        self.target = Some((target, chain));
        self.guard.runs_on(target);
        // The session's two ends are bound before the agent hears of it:
        // the router takes this session's frames from `target` alone.
        self.router.bind_session(self.sid, target);
        let _ = self.to_delivery.send(News::Target(target)).await;
        self.router
            .send(Frame::cbor(
                self.router.header(target, handle::SPAWN),
                &SpawnRequest {
                    peer: self.id,
                    command: request.command,
                    env: request.env,
                    pty: request.pty,
                    forward_agent: request.forward_agent,
                },
            ))
            .await;
        // A handed-over stdin may follow the SPAWN now.
        let _ = self.to_delivery.send(News::Spawned).await;
        self.forward(target).await
    }

    /// Re-address the shim's frames to the agent; watch for the agent's
    /// loss. Stdin takes turns with other sessions toward the same agent.
    async fn forward(&mut self, target: ContextId) -> End {
        let mut sender = BulkSender::new();
        loop {
            let frame = tokio::select! {
                frame = sender.next(self.reader.read_frame()) => frame,
                event = self.events.recv() => match event {
                    Ok(RouterEvent::ContextLost { context, reason }) if context == target => {
                        return self.lost(target, &reason);
                    }
                    Err(RecvError::Lagged(_)) if !self.router.has_route(target) => {
                        return self.lost(target, "no route");
                    }
                    _ => continue,
                },
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => return End::ShimLeft,
                // A shim that is killed resets its socket: normal, not news.
                Err(ReadError::Io(e)) => {
                    debug!("{}: {e}", self.name);
                    return End::ShimLeft;
                }
                Err(e) => {
                    warn!("{}: {e}", self.name);
                    return End::ShimLeft;
                }
            };
            let msg = match ToCommand::from_frame(&frame) {
                Ok(msg) => msg,
                Err(e) => {
                    debug!("{}: ignoring a frame: {e}", self.name);
                    continue;
                }
            };
            let link = SessionLink::client_end(self.router.clone(), self.id, target);
            match msg {
                ToCommand::Stdin(ref data) => {
                    self.guard.bytes.add_input(data.len());
                    link.send_bulk(&mut sender, link.command_frame(&msg)).await
                }
                ToCommand::Control(ref control) => {
                    if let SessionControl::Credit { .. } = control {
                        let credit = News::ShimControl(control.clone());
                        let _ = self.to_delivery.send(credit).await;
                    }
                    link.to_command(&msg).await;
                }
            }
        }
    }

    /// A session the host answers itself (`ssh -O`): `stderr`'s words,
    /// then exit status `code`; the shim's credit reaches the delivery
    /// until the shim leaves (or LAST_WORDS pass).
    async fn answer(&mut self, stderr: String, code: i32) -> End {
        if !stderr.is_empty() {
            let words = ToClient::Output(OutputStream::Stderr, stderr.into_bytes().into());
            self.router.send(words.to_frame(self.id, HOST_ID)).await;
        }
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let eof = ToClient::Event(SessionEvent::Eof(stream));
            self.router.send(eof.to_frame(self.id, HOST_ID)).await;
        }
        let exit = ToClient::Event(SessionEvent::Exit(ExitStatus::Code(code)));
        self.router.send(exit.to_frame(self.id, HOST_ID)).await;
        let deadline = tokio::time::Instant::now() + LAST_WORDS;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.reader.read_frame()).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(_) => return End::ShimLeft,
                Err(_) => return End::Failed("the client did not leave after the answer".into()),
            };
            if let Ok(ToCommand::Control(control @ SessionControl::Credit { .. })) =
                ToCommand::from_frame(&frame)
            {
                let _ = self.to_delivery.send(News::ShimControl(control)).await;
            }
        }
    }

    fn lost(&self, target: ContextId, reason: &str) -> End {
        self.connector.forget(target);
        let chain = self
            .target
            .as_ref()
            .map(|(_, c)| c.to_string())
            .unwrap_or_default();
        let why = format!("{chain}: connection lost: {reason}");
        End::Failed(naming_host(&self.host, &chain, why))
    }

    /// End the session: a shim that left takes everything with it; one
    /// that is still there hears why first.
    async fn close(mut self, end: End) {
        match end {
            End::ShimLeft => {
                // Nobody is left to deliver to: stop at once, and make sure
                // nothing the session started keeps running.
                self.tasks.abort_all();
                if let Some((target, _)) = &self.target {
                    let close = ToCommand::Control(SessionControl::Close);
                    SessionLink::client_end(self.router.clone(), self.id, *target)
                        .to_command(&close)
                        .await;
                }
                self.router.remove_stream(self.sid, "session ended").await;
            }
            End::Failed(why) => {
                let error = ToClient::Event(SessionEvent::Error(why));
                self.router.send(error.to_frame(self.id, HOST_ID)).await;
                self.router.remove_stream(self.sid, "session failed").await;
                let drained = async { while self.tasks.join_next().await.is_some() {} };
                let _ = tokio::time::timeout(LAST_WORDS, drained).await;
            }
        }
    }
}

/// A failure's message for a session that asked for `host`, with the
/// hostname first whenever the hop that failed (`failed_at`) does not name
/// it already: a rule gave `fleetbad` the chain `ssh:127.0.0.1:1`, or the
/// bastion before it failed. One line of a run over 200 hosts then says
/// which host it was (OpenSSH names only the address it connected to).
fn naming_host(host: &str, failed_at: &str, message: String) -> String {
    match names_host(failed_at, host) {
        true => message,
        false => format!("{host}: {message}"),
    }
}

/// Whether a hop's name (`ssh:web1`, `ssh:b,ssh:deploy@web1`, `sudo:root
/// on ssh:web1`) has an ssh hop to `host`.
fn names_host(hop_name: &str, host: &str) -> bool {
    let place = hop_name.rsplit_once(" on ").map_or(hop_name, |(_, p)| p);
    place.parse::<Chain>().is_ok_and(|chain| {
        chain
            .hops
            .iter()
            .any(|hop| matches!(hop, Hop::Ssh { host: h, .. } if h == host))
    })
}

#[cfg(test)]
mod tests {
    use super::naming_host;

    #[test]
    fn the_hostname_comes_first_when_the_hop_does_not_name_it() {
        let refused = "connect to host 127.0.0.1 port 1: connection refused";
        assert_eq!(
            naming_host(
                "fleetbad",
                "ssh:127.0.0.1:1",
                format!("ssh:127.0.0.1:1: {refused}")
            ),
            format!("fleetbad: ssh:127.0.0.1:1: {refused}")
        );
        // A bastion before the host failed.
        assert_eq!(
            naming_host("web3", "ssh:bastion", "ssh:bastion: timed out".into()),
            "web3: ssh:bastion: timed out"
        );
        // A privilege hop on the local host.
        assert_eq!(
            naming_host("box", "sudo:root on local", "sudo:root on local: x".into()),
            "box: sudo:root on local: x"
        );
    }

    #[test]
    fn a_hop_that_names_the_host_is_left_as_it_is() {
        for (hop, host) in [
            ("ssh:h13", "h13"),
            ("ssh:mfs-deploy@target:2222", "target"),
            ("sudo:root on ssh:h13", "h13"),
            ("sudo:root on ssh:bastion,ssh:web3", "web3"),
            ("ssh:[::1]:22", "::1"),
        ] {
            assert_eq!(naming_host(host, hop, "why".into()), "why", "{hop}");
        }
    }
}
