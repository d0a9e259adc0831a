//! One forwarded connection: a session of its own whose stdin and stdout
//! are the connection's socket, served by the host; this side only waits,
//! in a thread, for the session to end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use proto::session::{RemoteCommand, SessionRequest};

use crate::log::Log;
use crate::session::Session;
use crate::stdio::{Handover, StdinSource};

/// What every forwarded connection's session shares: the destination and
/// the client's connection options.
#[derive(Clone)]
pub struct Template {
    pub request: SessionRequest,
    pub log: Arc<Log>,
}

impl Template {
    /// A session for `command` over `sock`, in a thread of its own.
    pub fn spawn(&self, command: RemoteCommand, sock: OwnedFd) {
        let mut request = self.request.clone();
        request.command = command;
        request.env.clear();
        request.pty = None;
        request.forward_agent = false;
        let log = self.log.clone();
        std::thread::spawn(move || {
            let what = request.command.to_string();
            match Session::open(&request, Handover::socket(sock.as_raw_fd()), &log) {
                Ok(session) => {
                    // The host holds the socket now.
                    drop(sock);
                    session.quiet().run(StdinSource::HandedOver, &log);
                }
                Err(e) => log.debug(&format!("{what}: {e}")),
            }
        });
    }
}
