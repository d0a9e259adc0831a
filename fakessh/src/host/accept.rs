//! Sessions arriving on the control socket the host left open for COMMAND,
//! and on its fallback socket for shims whose inherited descriptor a
//! program on the way closed.
//!
//! Each accept loop owns the sessions it accepted (a `JoinSet`): stopping
//! the loop stops them, and a loop whose socket every holder has closed
//! returns once its sessions have ended.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use router::Router;
use router::control::{Greeting, Reply, Request};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::connector::Connector;
use super::delivery::{HelloError, PassedStdio};
use super::relay;
use crate::sys::{self, Received};

/// A request that is not a session (`status`, `stop`), for whoever
/// answers them (a daemon); the reply is the JSON to send back.
pub struct ControlCall {
    pub stop: bool,
    pub reply: oneshot::Sender<String>,
}

/// Who answers control requests on a socket path, if anyone.
pub type Controls = Option<mpsc::Sender<ControlCall>>;

/// Who may connect to a socket path: the host's own user, and root too
/// for a run's fallback socket (as OpenSSH's ControlMaster); a daemon's
/// takes its own user only.
#[derive(Clone, Copy)]
pub struct Peers {
    pub root_too: bool,
}

/// Accept sessions until every holder of the control socket has exited,
/// then wait for those sessions to end.
pub async fn accept_loop(control: OwnedFd, router: Arc<Router>, connector: Arc<Connector>) {
    serve_socket(control, router, connector, None).await
}

/// The same, on a connection to a socket path, where control requests may
/// come too.
async fn serve_socket(
    control: OwnedFd,
    router: Arc<Router>,
    connector: Arc<Connector>,
    controls: Controls,
) {
    let control = match sys::set_nonblocking(control.as_fd())
        .map_err(std::io::Error::from)
        .and_then(|_| sys::register_async(control))
    {
        Ok(fd) => fd,
        Err(e) => return warn!("control socket: {e}"),
    };
    let mut sessions = JoinSet::new();
    loop {
        let mut guard = tokio::select! {
            ready = control.readable() => match ready {
                Ok(g) => g,
                Err(e) => {
                    warn!("control socket: {e}");
                    break;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {
                if sessions.is_empty() {
                    sys::release_free_memory();
                }
                continue;
            }
        };
        match guard.try_io(|fd| sys::recv_fds(fd.get_ref().as_fd())) {
            Ok(Ok(Received::Message { bytes, .. }))
                if matches!(Request::parse(&bytes), Ok(Request::Status | Request::Stop)) =>
            {
                let stop = Request::parse(&bytes) == Ok(Request::Stop);
                let answer = answer_control(&controls, stop).await;
                let message = Reply::encode(&answer);
                if let Err(e) = sys::send_greeting(guard.get_ref().get_ref().as_fd(), &message) {
                    debug!("control request: cannot answer: {e}");
                }
            }
            Ok(Ok(Received::Message { bytes, fds })) => match session_hello(&bytes, fds) {
                Ok((sock, stdio)) => {
                    let id = connector.next_session_id();
                    sessions.spawn(relay::serve(
                        sock,
                        stdio,
                        id,
                        router.clone(),
                        connector.clone(),
                    ));
                }
                Err(e) => warn!("control socket: {e}"),
            },
            Ok(Ok(Received::Eof)) => {
                debug!("control socket closed by every holder");
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => {
                warn!("control socket: {e}");
                break;
            }
            Err(_would_block) => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}

/// The answer to a control request: the daemon's, or a refusal.
async fn answer_control(controls: &Controls, stop: bool) -> String {
    let refusal = |why: &str| serde_json::json!({ "error": why }).to_string();
    let Some(controls) = controls else {
        return refusal("this is a mitogen-fakessh run, not a daemon");
    };
    let (reply, answer) = oneshot::channel();
    if controls.send(ControlCall { stop, reply }).await.is_err() {
        return refusal("the daemon is stopping");
    }
    answer
        .await
        .unwrap_or_else(|_| refusal("the daemon is stopping"))
}

/// Accept shims that lost the inherited control socket and reach us
/// through the fallback socket in the 0700 shim directory instead (or, for
/// a daemon, every client). Only our own user (and root, if `peers` says
/// so) is accepted, and a refusal is logged; each connection is then
/// served like the inherited socket.
pub async fn listen_loop(
    listener: OwnedFd,
    router: Arc<Router>,
    connector: Arc<Connector>,
    peers: Peers,
    controls: Controls,
) {
    let listener = match sys::register_async(listener) {
        Ok(fd) => fd,
        Err(e) => return warn!("fallback socket: {e}"),
    };
    let me = nix::unistd::geteuid().as_raw();
    let mut connections = JoinSet::new();
    loop {
        let mut guard = tokio::select! {
            ready = listener.readable() => match ready {
                Ok(g) => g,
                Err(e) => return warn!("fallback socket: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let conn = match guard
            .try_io(|fd| sys::accept_cloexec(fd.get_ref().as_fd()).map_err(std::io::Error::from))
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => {
                warn!("fallback socket: accept: {e}");
                continue;
            }
            Err(_would_block) => continue,
        };
        let refusal = match sys::peer_uid(conn.as_fd()) {
            Ok(uid) if uid == me || (uid == 0 && peers.root_too) => {
                debug!("a client connected through the socket path (uid {uid})");
                if let Err(e) = sys::send_greeting(conn.as_fd(), &Greeting::Welcome.encode()) {
                    warn!("fallback socket: cannot greet a shim: {e}");
                    continue;
                }
                connections.spawn(serve_socket(
                    conn,
                    router.clone(),
                    connector.clone(),
                    controls.clone(),
                ));
                continue;
            }
            Ok(uid) => {
                warn!("refused a connection from uid {uid}: only uid {me} may use this socket");
                format!("uid {uid} is not the account that runs it (uid {me})")
            }
            Err(e) => {
                warn!("fallback socket: cannot tell who connected: {e}");
                format!("it cannot tell who is connecting ({e})")
            }
        };
        // Best effort: the connection is closed either way.
        let _ = sys::send_greeting(conn.as_fd(), &Greeting::Refused(refusal).encode());
    }
}

/// A session request ([`Request::Session`]) and its descriptors: the
/// session socket first, then the handed-over stdio.
fn session_hello(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(OwnedFd, PassedStdio), HelloError> {
    let Request::Session(handover) = Request::parse(bytes)? else {
        return Err(HelloError::NotASession);
    };
    let mut fds = fds.into_iter();
    let sock = fds.next().ok_or(HelloError::NoSocket)?;
    let [stdin, stdout, stderr] = handover.assign(fds.collect())?;
    Ok((
        sock,
        PassedStdio {
            stdin,
            stdout,
            stderr,
        },
    ))
}
