//! The far side's listeners (`-R`) and the forwarded agent (`-A`): each
//! connection they accept comes as an `Accepted` event; this side connects
//! to the target and takes the connection as a session of its own.

use std::os::fd::OwnedFd;
use std::sync::mpsc;

use proto::session::{ListenAddress, RemoteCommand, SessionEvent};

use super::connection::Template;
use super::spec::{Connect, Forward, Listen};
use crate::error::ShimError;
use crate::session::Session;
use crate::stdio::{Handover, StdinSource};

/// Connect to `target` on this side.
pub fn connect(target: &Connect) -> std::io::Result<OwnedFd> {
    match target {
        Connect::Tcp { host, port } => {
            let sock = std::net::TcpStream::connect((host.as_str(), *port))?;
            let _ = sock.set_nodelay(true);
            Ok(OwnedFd::from(sock))
        }
        Connect::Unix(path) => Ok(OwnedFd::from(std::os::unix::net::UnixStream::connect(
            path,
        )?)),
    }
}

/// What an `Accepted` event does: connect to `target`, take the connection.
pub fn take_to(target: Connect, template: Template) -> impl FnMut(SessionEvent) + Send + 'static {
    move |event| {
        if let SessionEvent::Accepted { token } = event {
            match connect(&target) {
                Ok(sock) => template.spawn(RemoteCommand::TakeAccepted { token }, sock),
                Err(e) => template
                    .log
                    .debug(&format!("connect to {}: {e}", describe(&target))),
            }
        }
    }
}

fn describe(target: &Connect) -> String {
    match target {
        Connect::Tcp { host, port } => format!("{host}:{port}"),
        Connect::Unix(path) => path.clone(),
    }
}

/// Why a `-R` listener is not up.
#[derive(Debug, thiserror::Error)]
pub enum ListenFailed {
    #[error("{0}")]
    Open(ShimError),
    #[error("the far side refused the listener (-v says why)")]
    Refused,
}

/// A far-side listener for `forward`, serving in a thread: the port it
/// listens on (the one it allocated for port 0), or why it could not.
pub fn listen(forward: &Forward, template: &Template) -> Result<u16, ListenFailed> {
    let address = match &forward.listen {
        Listen::Tcp { bind, port } => ListenAddress::Tcp {
            bind: bind.clone(),
            port: *port,
        },
        Listen::Unix(path) => ListenAddress::Unix(path.clone()),
    };
    let mut request = template.request.clone();
    request.command = RemoteCommand::Listen(address);
    request.env.clear();
    request.pty = None;
    request.forward_agent = false;
    let session =
        Session::open(&request, Handover::default(), &template.log).map_err(ListenFailed::Open)?;
    let (up, is_up) = mpsc::channel::<u16>();
    let mut take = take_to(forward.connect.clone(), template.clone());
    let session = session.quiet().on_event(move |event| match event {
        SessionEvent::Listening { port } => {
            let _ = up.send(port);
        }
        other => take(other),
    });
    let log = template.log.clone();
    std::thread::spawn(move || {
        // Ends when the far side does (or never, until we exit).
        session.run(StdinSource::Null, &log);
    });
    // The sender goes with the session if it ends first.
    is_up.recv().map_err(|_| ListenFailed::Refused)
}
