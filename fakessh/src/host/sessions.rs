//! Shim sessions on the host: accept session sockets passed over the control
//! socket and relay each one to the context that serves its hostname.
//!
//! The host is the shims' only authority: a shim can ask for a session, and
//! the host (an ancestor of every agent) decides where it runs and issues the
//! spawn itself. After that the shim's stdin and control frames are
//! re-addressed to the target agent with the session's own id as `src` and
//! `auth`; the agent's output comes back to that id through the router.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use router_core::Router;
use router_core::connection::{FrameReader, FrameWriter, ReadError};
use router_core::frame::Frame;
use router_core::message::{
    ContextId, FALLBACK_REFUSAL, FALLBACK_WELCOME, OutputStream, RemoteCommand, SESSION_HELLO,
    SessionControl, SessionEvent, SessionRequest, SpawnRequest, handle,
};
use router_core::pump::{SendWindow, ready_now};
use router_core::router::{RouterEvent, StreamRole, TURN_EXEMPT, Turn};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::connector::Connector;
use super::served::{Delivery, PassedStdio, pump_stdin, session_header};
use crate::sys::{self, Received};

/// Accept sessions until every holder of the control socket has exited.
pub async fn accept_loop(control: OwnedFd, router: Arc<Router>, connector: Arc<Connector>) {
    if let Err(e) = sys::set_nonblocking(control.as_fd()) {
        warn!("control socket: {e}");
        return;
    }
    let control = match sys::register_async(control) {
        Ok(fd) => fd,
        Err(e) => return warn!("control socket: {e}"),
    };
    loop {
        let mut guard = match control.readable().await {
            Ok(g) => g,
            Err(e) => return warn!("control socket: {e}"),
        };
        match guard.try_io(|fd| sys::recv_fds(fd.get_ref().as_fd())) {
            Ok(Ok(Received::Message { bytes, fds })) => match session_hello(&bytes, fds) {
                Ok((sock, stdio)) => {
                    let id = connector.next_session_id();
                    tokio::spawn(relay(sock, stdio, id, router.clone(), connector.clone()));
                }
                Err(e) => warn!("control socket: {e}"),
            },
            Ok(Ok(Received::Eof)) => return debug!("control socket closed by every holder"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return warn!("control socket: {e}"),
            Err(_would_block) => {}
        }
    }
}

/// Accept shims that lost the inherited control socket (a program on the
/// way closed inherited descriptors) and reach us through the fallback
/// socket in the 0700 shim directory instead. Like OpenSSH's ControlMaster,
/// accept only our own user and root; each connection is then served like
/// the inherited socket.
pub async fn listen_loop(listener: OwnedFd, router: Arc<Router>, connector: Arc<Connector>) {
    let listener = match sys::register_async(listener) {
        Ok(fd) => fd,
        Err(e) => return warn!("fallback socket: {e}"),
    };
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let mut guard = match listener.readable().await {
            Ok(g) => g,
            Err(e) => return warn!("fallback socket: {e}"),
        };
        let conn = match guard.try_io(|fd| {
            nix::sys::socket::accept4(fd.get_ref(), nix::sys::socket::SockFlag::SOCK_CLOEXEC)
                .map_err(std::io::Error::from)
        }) {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => {
                warn!("fallback socket: accept: {e}");
                continue;
            }
            Err(_would_block) => continue,
        };
        let refusal = match sys::peer_uid(conn.as_fd()) {
            Ok(uid) if uid == me || uid == 0 => {
                debug!("a shim connected through the fallback socket (uid {uid})");
                if let Err(e) = sys::send_greeting(conn.as_fd(), &[FALLBACK_WELCOME]) {
                    warn!("fallback socket: cannot greet a shim: {e}");
                    continue;
                }
                tokio::spawn(accept_loop(conn, router.clone(), connector.clone()));
                continue;
            }
            Ok(uid) => {
                warn!("refused a session from uid {uid} on the fallback socket");
                format!("uid {uid} is not the account that runs it (uid {me})")
            }
            Err(e) => {
                warn!("fallback socket: cannot tell who connected: {e}");
                format!("it cannot tell who is connecting ({e})")
            }
        };
        let mut message = vec![FALLBACK_REFUSAL];
        message.extend_from_slice(refusal.as_bytes());
        // Best effort: the connection is closed either way.
        let _ = sys::send_greeting(conn.as_fd(), &message);
    }
}

/// A session hello: [`SESSION_HELLO`], the [`handover`] bits (none if
/// absent), and the descriptors (session socket first).
///
/// [`handover`]: router_core::message::handover
fn session_hello(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(OwnedFd, PassedStdio), String> {
    let bits = match bytes {
        // A bare `S`: a session socket and nothing else.
        [SESSION_HELLO] => 0,
        [SESSION_HELLO, bits] => *bits,
        _ => {
            return Err(format!(
                "ignored a message that is not a session hello ({bytes:?})"
            ));
        }
    };
    let mut fds = fds.into_iter();
    let sock = fds
        .next()
        .ok_or("a session hello without its session socket")?;
    Ok((sock, PassedStdio::from_hello(bits, fds.collect())?))
}

fn event(router: &Router, to: ContextId, ev: &SessionEvent) {
    router.send(Frame::cbor(router.header(to, handle::SESSION_EVENT), ev));
}

/// Serve one shim session from request to end.
async fn relay(
    fd: OwnedFd,
    stdio: PassedStdio,
    id: ContextId,
    router: Arc<Router>,
    connector: Arc<Connector>,
) {
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    let stream = match std_stream
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(std_stream))
    {
        Ok(s) => s,
        Err(e) => return warn!("session {id}: {e}"),
    };
    let (r, w) = stream.into_split();
    let mut reader = FrameReader::new(r, router.max_payload());
    let name = format!("session {id}");
    let (tx, frames) = mpsc::unbounded_channel();
    let sid = router.add_stream(&name, id, StreamRole::Child, tx);
    let mut events = router.subscribe();
    let (delivery, served) = match Delivery::new(router.clone(), id, FrameWriter::new(w), stdio) {
        Ok(d) => d,
        Err(e) => {
            // The shim sees its socket close and exits 255.
            warn!("{name}: cannot serve the shim's stdio: {e}");
            return router.remove_stream(sid, "unusable stdio");
        }
    };
    let delivering = tokio::spawn(delivery.run(frames));
    let mut tasks = SessionTasks::default();

    let request = match reader.read_frame().await {
        Ok(Some(f)) if f.header.handle == handle::SESSION_OPEN => {
            f.decode_cbor::<SessionRequest>("session request")
        }
        Ok(Some(f)) => {
            warn!(
                "{name}: first frame has handle {}, expected a session request",
                f.header.handle
            );
            return router.remove_stream(sid, "protocol error");
        }
        Ok(None) => return router.remove_stream(sid, "shim left"),
        Err(e) => {
            warn!("{name}: {e}");
            return router.remove_stream(sid, "bad frame");
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            event(&router, id, &SessionEvent::Error(e.to_string()));
            return router.remove_stream(sid, "bad request");
        }
    };
    if matches!(request.command, RemoteCommand::TcpConnect { .. }) {
        event(
            &router,
            id,
            &SessionEvent::Error("port forwarding is not supported by mitogen-fakessh".into()),
        );
        return router.remove_stream(sid, "refused");
    }
    let (chain, on_demand) = connector.routing.chain_for(&request);
    let connected = if on_demand {
        connector.connect_on_demand(&chain, &request).await
    } else {
        connector.connect(&chain).await
    };
    let target = match connected {
        Ok(t) => t,
        Err(e) => {
            let e = match connector.routing.unmapped_hint(&request.host) {
                Some(hint) => format!("{e}\n{hint}"),
                None => e,
            };
            event(&router, id, &SessionEvent::Error(e));
            return router.remove_stream(sid, "no context");
        }
    };
    info!(
        "{name}: {} on {chain} ({:?})",
        request.host, request.command
    );
    router.send(Frame::cbor(
        router.header(target, handle::SPAWN),
        &SpawnRequest {
            peer: id,
            command: request.command,
            env: request.env,
            pty: request.pty,
        },
    ));
    if let Some((stdin, window)) = served.stdin {
        tasks.window = Some(window.clone());
        let pump = tokio::spawn(pump_stdin(stdin, window, router.clone(), target, id));
        tasks.pump = Some(pump.abort_handle());
    }
    let stderr_acks = served.stderr_acks;

    // Re-address the shim's frames to the agent; watch for the agent's loss.
    // Stdin takes turns with other sessions toward the same agent: keep the
    // turn while the shim has more data ready, give it back the moment it
    // would wait (see `Turn`).
    let mut turn: Option<Turn> = None;
    loop {
        let ready = match turn {
            Some(_) => ready_now(reader.read_frame()).await,
            None => None,
        };
        let frame = match ready {
            Some(frame) => frame,
            None => {
                turn = None;
                tokio::select! {
                    frame = reader.read_frame() => frame,
                    ev = events.recv() => match ev {
                        Some(RouterEvent::ContextLost { context, reason }) if context == target => {
                            drop(tasks);
                            connector.forget(target);
                            event(&router, id, &SessionEvent::Error(format!("{chain}: connection lost: {reason}")));
                            return router.remove_stream(sid, "target lost");
                        }
                        Some(_) => continue,
                        None => break,
                    },
                }
            }
        };
        match frame {
            Ok(Some(mut f))
                if matches!(
                    f.header.handle,
                    handle::SESSION_STDIN | handle::SESSION_CONTROL
                ) =>
            {
                f.header = session_header(target, id, f.header.handle);
                if let Some(acks) = &stderr_acks {
                    count_stderr_ack(acks, &f);
                }
                if f.header.handle == handle::SESSION_STDIN {
                    let len = f.payload.len();
                    if turn.is_none() && len > TURN_EXEMPT {
                        turn = router.take_turn(target).await;
                    }
                    router.send_paced(f).await;
                    if let Some(t) = &mut turn
                        && !t.spend(len)
                    {
                        turn = None;
                    }
                } else {
                    router.send(f);
                }
            }
            Ok(Some(f)) => debug!("{name}: ignoring a frame for handle {}", f.header.handle),
            Ok(None) => break,
            // A shim that is killed resets its socket: normal, not news.
            Err(ReadError::Io(e)) => {
                debug!("{name}: {e}");
                break;
            }
            Err(e) => {
                warn!("{name}: {e}");
                break;
            }
        }
    }
    drop(turn);
    // Nobody is left to deliver to: stop writing its stdout at once.
    delivering.abort();
    drop(tasks);
    // The shim is gone (normally after the exit status): make sure nothing
    // it started keeps running.
    router.send(Frame::cbor(
        session_header(target, id, handle::SESSION_CONTROL),
        &SessionControl::Close,
    ));
    router.remove_stream(sid, "session ended");
}

/// The host's own tasks for a session with handed-over stdin; dropping
/// this stops them (the session is over, whichever way it ended).
#[derive(Default)]
struct SessionTasks {
    pump: Option<tokio::task::AbortHandle>,
    window: Option<SendWindow>,
}

impl Drop for SessionTasks {
    fn drop(&mut self) {
        if let Some(pump) = &self.pump {
            pump.abort();
        }
        if let Some(window) = &self.window {
            window.close();
        }
    }
}

/// The shim wrote `n` bytes of stderr (its credit says so): the count a
/// served stdout waits for, see `Delivery::stderr_settled`.
fn count_stderr_ack(acks: &watch::Sender<u64>, frame: &Frame) {
    if frame.header.handle != handle::SESSION_CONTROL {
        return;
    }
    if let Ok(SessionControl::Credit {
        stream: OutputStream::Stderr,
        bytes,
    }) = frame.decode_cbor::<SessionControl>("session control")
    {
        acks.send_modify(|n| *n += u64::from(bytes));
    }
}
