//! What an agent is asked to do, as typed requests: the frames on the
//! agent's own handles, checked for who may ask, then decoded
//! (`AgentRequest::from_frame`, as mini-redis's `Command::from_frame`).
//!
//! Who may ask what:
//! - a command (SPAWN, CONNECT, LANES, SHUTDOWN) only under an ancestor's
//!   authority, never the agent's own (Mitogen's `has_parent_authority`);
//! - a session's stdin and controls only under the session's own
//!   authority (`auth` is its `src`): the router has already checked that
//!   the session's id lies behind the stream the frame came on, as the
//!   SPAWN that opened it did.

use crate::frame::Frame;
use crate::lanes::{JoinLanes, LanesRequest};
use crate::message::{ConnectRequest, ContextId, Handle, handle};
use crate::session::message::DecodeError;
use crate::session::{SpawnRequest, ToCommand};

/// One request to an agent.
#[derive(Debug)]
pub enum AgentRequest {
    /// Run a session's command (or a forward) for client `peer`.
    Spawn(SpawnRequest),
    /// Start the next hop from here; answer on `reply_to` to `from`.
    Connect {
        request: ConnectRequest,
        from: ContextId,
        reply_to: Handle,
    },
    /// Time the round trip, or make lanes ([`crate::lanes`]); answer on
    /// `reply_to` to `from`.
    Lanes {
        request: LanesRequest,
        from: ContextId,
        reply_to: Handle,
    },
    /// Join the lanes made; answer on `reply_to` to `from`.
    JoinLanes {
        request: JoinLanes,
        from: ContextId,
        reply_to: Handle,
    },
    /// Stdin or a control for session `peer`.
    Session { peer: ContextId, msg: ToCommand },
    /// End everything and exit.
    Shutdown,
}

/// The handles an agent takes requests on.
pub const AGENT_HANDLES: [Handle; 7] = [
    handle::SPAWN,
    handle::CONNECT,
    handle::LANES,
    handle::LANES_JOIN,
    handle::SESSION_STDIN,
    handle::SESSION_CONTROL,
    handle::SHUTDOWN,
];

/// A frame that is not a request this agent takes.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("refused {what} from context {auth}: not an ancestor")]
    NotAnAncestor { what: &'static str, auth: ContextId },
    #[error("refused a frame for session {peer} under the authority of context {auth}")]
    ForeignAuthority { peer: ContextId, auth: ContextId },
    #[error("{0}")]
    Malformed(String),
    #[error("no request on handle {0}")]
    UnknownHandle(Handle),
}

impl RequestError {
    /// What to answer on the frame's `reply_to`, if anything: a refused
    /// command is answered dead, so its sender does not wait.
    pub fn answer(&self) -> Option<String> {
        match self {
            RequestError::NotAnAncestor { what, .. } => Some(format!("{what} refused by policy")),
            RequestError::Malformed(why) => Some(why.clone()),
            _ => None,
        }
    }
}

impl AgentRequest {
    /// The request in `frame`, for the agent `me` whose ancestors, nearest
    /// first, are `ancestors`.
    pub fn from_frame(
        frame: &Frame,
        me: ContextId,
        ancestors: &[ContextId],
    ) -> Result<AgentRequest, RequestError> {
        let h = &frame.header;
        let command = |what| {
            if h.auth != me && ancestors.contains(&h.auth) {
                Ok(())
            } else {
                Err(RequestError::NotAnAncestor { what, auth: h.auth })
            }
        };
        let malformed = |e: &dyn std::fmt::Display| RequestError::Malformed(e.to_string());
        match h.handle {
            handle::SPAWN => {
                command("spawn")?;
                let req = frame
                    .decode_cbor("spawn request")
                    .map_err(|e| malformed(&e))?;
                Ok(AgentRequest::Spawn(req))
            }
            handle::CONNECT => {
                command("connect")?;
                let request = frame
                    .decode_cbor("connect request")
                    .map_err(|e| malformed(&e))?;
                Ok(AgentRequest::Connect {
                    request,
                    from: h.src,
                    reply_to: h.reply_to,
                })
            }
            handle::LANES => {
                command("lanes")?;
                let request = frame
                    .decode_cbor("lanes request")
                    .map_err(|e| malformed(&e))?;
                Ok(AgentRequest::Lanes {
                    request,
                    from: h.src,
                    reply_to: h.reply_to,
                })
            }
            handle::LANES_JOIN => {
                command("lanes")?;
                let request = frame.decode_cbor("join lanes").map_err(|e| malformed(&e))?;
                Ok(AgentRequest::JoinLanes {
                    request,
                    from: h.src,
                    reply_to: h.reply_to,
                })
            }
            handle::SHUTDOWN => {
                command("shutdown")?;
                Ok(AgentRequest::Shutdown)
            }
            handle::SESSION_STDIN | handle::SESSION_CONTROL => {
                let peer = h.src;
                if h.auth != peer {
                    return Err(RequestError::ForeignAuthority { peer, auth: h.auth });
                }
                let msg = ToCommand::from_frame(frame)
                    .map_err(|e: DecodeError| malformed(&format!("session {peer}: {e}")))?;
                Ok(AgentRequest::Session { peer, msg })
            }
            other => Err(RequestError::UnknownHandle(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Header;
    use crate::hop::Hop;
    use crate::session::{RemoteCommand, SessionControl};

    const ME: ContextId = 3;
    const ANCESTORS: [ContextId; 2] = [1, 0];

    fn header(handle: Handle, src: ContextId, auth: ContextId) -> Header {
        Header {
            dst: ME,
            src,
            auth,
            handle,
            reply_to: 1000,
        }
    }

    fn spawn(auth: ContextId) -> Frame {
        let req = SpawnRequest {
            peer: 1 << 24,
            command: RemoteCommand::Exec(b"true".to_vec()),
            env: vec![],
            pty: None,
            forward_agent: false,
        };
        Frame::cbor(header(handle::SPAWN, auth, auth), &req)
    }

    #[test]
    fn commands_come_only_from_ancestors() {
        for auth in ANCESTORS {
            let req = AgentRequest::from_frame(&spawn(auth), ME, &ANCESTORS).unwrap();
            assert!(matches!(req, AgentRequest::Spawn(_)));
        }
        for auth in [ME, 4, 1 << 24] {
            let e = AgentRequest::from_frame(&spawn(auth), ME, &ANCESTORS).unwrap_err();
            assert!(
                matches!(e, RequestError::NotAnAncestor { .. }),
                "{auth}: {e}"
            );
            assert_eq!(e.answer().as_deref(), Some("spawn refused by policy"));
        }
        let shutdown = Frame::cbor(header(handle::SHUTDOWN, 5, 5), &());
        assert!(AgentRequest::from_frame(&shutdown, ME, &ANCESTORS).is_err());
        // Lanes are commands too: a descendant cannot make FIFOs here.
        let lanes = LanesRequest { lanes: 3 };
        let join = JoinLanes {
            lanes: vec![1, 2, 3],
            socket: true,
        };
        for auth in [ME, 4, 1 << 24] {
            let ask = Frame::cbor(header(handle::LANES, auth, auth), &lanes);
            let e = AgentRequest::from_frame(&ask, ME, &ANCESTORS).unwrap_err();
            assert!(matches!(e, RequestError::NotAnAncestor { .. }), "{e}");
            let ask = Frame::cbor(header(handle::LANES_JOIN, auth, auth), &join);
            assert!(AgentRequest::from_frame(&ask, ME, &ANCESTORS).is_err());
        }
        let ask = Frame::cbor(header(handle::LANES, 0, 0), &lanes);
        assert!(matches!(
            AgentRequest::from_frame(&ask, ME, &ANCESTORS),
            Ok(AgentRequest::Lanes { .. })
        ));
        let connect = Frame::cbor(
            header(handle::CONNECT, 0, 0),
            &ConnectRequest {
                new_id: 9,
                hop: Hop::Local,
                name: "local".into(),
                log_level: 0,
                password: None,
                agent_dir: None,
            },
        );
        let req = AgentRequest::from_frame(&connect, ME, &ANCESTORS).unwrap();
        assert!(matches!(
            req,
            AgentRequest::Connect {
                from: 0,
                reply_to: 1000,
                ..
            }
        ));
    }

    #[test]
    fn session_frames_carry_the_sessions_own_authority() {
        let peer = 1 << 24;
        let eof = ToCommand::Control(SessionControl::Eof).to_frame(ME, peer);
        let req = AgentRequest::from_frame(&eof, ME, &ANCESTORS).unwrap();
        assert!(matches!(req, AgentRequest::Session { peer: p, .. } if p == peer));
        let mut forged = eof.clone();
        forged.header.auth = 0;
        let e = AgentRequest::from_frame(&forged, ME, &ANCESTORS).unwrap_err();
        assert!(matches!(e, RequestError::ForeignAuthority { .. }));
        assert_eq!(e.answer(), None, "a forged session frame gets no answer");
    }

    #[test]
    fn malformed_and_unknown_frames_are_refused() {
        let mut bad = spawn(0);
        bad.payload = bytes::Bytes::from_static(b"\xff\x00");
        let e = AgentRequest::from_frame(&bad, ME, &ANCESTORS).unwrap_err();
        assert!(matches!(e, RequestError::Malformed(_)));
        let odd = Frame::cbor(header(4242, 0, 0), &());
        assert!(matches!(
            AgentRequest::from_frame(&odd, ME, &ANCESTORS),
            Err(RequestError::UnknownHandle(4242))
        ));
    }
}
