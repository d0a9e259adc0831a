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
use router_core::frame::{Frame, Header};
use router_core::message::{
    ContextId, RemoteCommand, SessionControl, SessionEvent, SessionRequest, SpawnRequest, handle,
};
use router_core::pump::ready_now;
use router_core::router::{RouterEvent, StreamRole, TURN_EXEMPT, Turn};
use tracing::{debug, info, warn};

use super::connector::Connector;
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
        match guard.try_io(|fd| sys::recv_fd(fd.get_ref().as_fd())) {
            Ok(Ok(Received::Fd(fd))) => {
                let id = connector.next_session_id();
                tokio::spawn(relay(fd, id, router.clone(), connector.clone()));
            }
            Ok(Ok(Received::Nothing)) => {}
            Ok(Ok(Received::Eof)) => return debug!("control socket closed by every holder"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return warn!("control socket: {e}"),
            Err(_would_block) => {}
        }
    }
}

fn event(router: &Router, to: ContextId, ev: &SessionEvent) {
    router.send(Frame::cbor(router.header(to, handle::SESSION_EVENT), ev));
}

/// Serve one shim session from request to end.
async fn relay(fd: OwnedFd, id: ContextId, router: Arc<Router>, connector: Arc<Connector>) {
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
    let sid = router.attach_writer(&name, id, StreamRole::Child, FrameWriter::new(w));
    let mut events = router.subscribe();

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
    let chain = connector.routing.chain_for(&request);
    let target = match connector.connect(&chain).await {
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
                f.header = Header {
                    dst: target,
                    src: id,
                    auth: id,
                    handle: f.header.handle,
                    reply_to: 0,
                };
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
    // The shim is gone (normally after the exit status): make sure nothing
    // it started keeps running.
    router.send(Frame::cbor(
        Header {
            dst: target,
            src: id,
            auth: id,
            handle: handle::SESSION_CONTROL,
            reply_to: 0,
        },
        &SessionControl::Close,
    ));
    router.remove_stream(sid, "session ended");
}
