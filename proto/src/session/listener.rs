//! The command end of a listener held for a client (`ssh -R`, and the
//! `SSH_AUTH_SOCK` of `ssh -A`): it says where it listens, then hands each
//! accepted connection to the client as a token, which the client takes
//! as a session of its own. No stdin and no output: a listener session
//! carries only those events, until the client closes it.
//!
//! The driver binds, accepts and keeps the accepted connections, at most
//! [`WAITING_MAX`] waiting at once (beyond it, a new connection is closed,
//! so a flood of connections from whoever can reach the port costs a
//! bounded amount of memory); this decides what the client hears, and ends
//! the session once.

use std::collections::VecDeque;

use super::error::ProtocolError;
use super::message::{ExitStatus, SessionControl, SessionEvent, ToCommand};

/// Connections that may wait in an agent, accepted and not yet taken.
pub const WAITING_MAX: usize = 256;

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerAction {
    /// Send this event to the client.
    Send(SessionEvent),
    /// Stop listening (the client closed the session, or binding failed).
    Stop,
}

/// A listener's state.
#[derive(Debug, Default)]
pub struct ListenerSession {
    done: bool,
    actions: VecDeque<ListenerAction>,
}

impl ListenerSession {
    pub fn new() -> ListenerSession {
        ListenerSession::default()
    }

    /// The listener is bound (`port`: the one allocated for port 0).
    pub fn bound(&mut self, port: u16) {
        if !self.done {
            self.actions
                .push_back(ListenerAction::Send(SessionEvent::Listening { port }));
        }
    }

    /// Binding failed: the client hears why, and the session ends.
    pub fn bind_failed(&mut self, why: String) {
        if !std::mem::replace(&mut self.done, true) {
            self.actions
                .push_back(ListenerAction::Send(SessionEvent::Error(why)));
            self.actions.push_back(ListenerAction::Stop);
        }
    }

    /// A connection was accepted and kept under `token`.
    pub fn accepted(&mut self, token: u64) {
        if !self.done {
            self.actions
                .push_back(ListenerAction::Send(SessionEvent::Accepted { token }));
        }
    }

    /// A message from the client: only a close means anything; a listener
    /// takes no stdin.
    pub fn on_message(&mut self, msg: ToCommand) -> Result<(), ProtocolError> {
        match msg {
            ToCommand::Stdin(_) => Err(ProtocolError::StdinToListener),
            ToCommand::Control(SessionControl::Close) => {
                self.close();
                Ok(())
            }
            ToCommand::Control(_) => Ok(()),
        }
    }

    /// The client's session is over (its frames stopped, or it closed
    /// it): stop, and say so.
    pub fn close(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.actions.push_back(ListenerAction::Stop);
            self.actions
                .push_back(ListenerAction::Send(SessionEvent::Exit(ExitStatus::Code(
                    0,
                ))));
        }
    }

    pub fn next_action(&mut self) -> Option<ListenerAction> {
        self.actions.pop_front()
    }

    pub fn is_done(&self) -> bool {
        self.done && self.actions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut ListenerSession) -> Vec<ListenerAction> {
        std::iter::from_fn(|| s.next_action()).collect()
    }

    #[test]
    fn listening_then_accepted_until_closed() {
        let mut s = ListenerSession::new();
        s.bound(4022);
        s.accepted(7);
        assert_eq!(
            drain(&mut s),
            vec![
                ListenerAction::Send(SessionEvent::Listening { port: 4022 }),
                ListenerAction::Send(SessionEvent::Accepted { token: 7 }),
            ]
        );
        s.on_message(ToCommand::Control(SessionControl::Eof))
            .unwrap();
        assert!(drain(&mut s).is_empty());
        s.on_message(ToCommand::Control(SessionControl::Close))
            .unwrap();
        assert_eq!(
            drain(&mut s),
            vec![
                ListenerAction::Stop,
                ListenerAction::Send(SessionEvent::Exit(ExitStatus::Code(0))),
            ]
        );
        assert!(s.is_done());
        s.close();
        s.accepted(8);
        assert!(drain(&mut s).is_empty(), "nothing after the end");
    }

    #[test]
    fn a_failed_bind_ends_with_its_reason_and_stdin_is_refused() {
        let mut s = ListenerSession::new();
        s.bind_failed("bind [127.0.0.1]:22: Address already in use".into());
        assert!(matches!(
            drain(&mut s)[..],
            [
                ListenerAction::Send(SessionEvent::Error(_)),
                ListenerAction::Stop
            ]
        ));
        let mut s = ListenerSession::new();
        assert!(s.on_message(ToCommand::Stdin(bytes::Bytes::new())).is_err());
    }
}
