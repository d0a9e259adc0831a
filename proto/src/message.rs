//! What frames carry: context ids, well-known handles and the CBOR payloads.
//!
//! Control payloads are small serde types encoded with ciborium. Bulk data
//! (a session's stdin, stdout and stderr) travels as raw-bytes frames and is
//! never re-encoded.

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::frame::{Encoding, Frame, Header};
use crate::hop::Hop;

/// A context: the host (0), an agent, or a shim session.
pub type ContextId = u32;
/// A mailbox inside a context.
pub type Handle = u32;

/// The host process is always context 0 and is the ancestor of every agent.
pub const HOST_ID: ContextId = 0;
/// Shim sessions get ids from here up, so they never collide with agents.
pub const FIRST_SESSION_ID: ContextId = 1 << 24;

/// Well-known handles. Dynamic (reply) handles start at [`handle::FIRST_DYNAMIC`].
pub mod handle {
    use crate::message::Handle;
    /// A new context below the sender; payload [`super::RouteUpdate`].
    pub const ADD_ROUTE: Handle = 103;
    /// A context below the sender is gone; payload [`super::RouteUpdate`].
    pub const DEL_ROUTE: Handle = 104;
    /// Agent to parent after start-up; payload [`super::AgentHello`].
    pub const CONTEXT_READY: Handle = 105;
    /// Parent to agent: exit now, killing everything started.
    pub const SHUTDOWN: Handle = 106;
    /// Host to agent: start another hop from there; payload [`super::ConnectRequest`].
    pub const CONNECT: Handle = 110;
    /// Host to agent: run a session's command; payload [`super::SpawnRequest`].
    pub const SPAWN: Handle = 111;
    /// Host to an ssh hop's agent: time the round trip, or make lanes;
    /// payload [`crate::lanes::LanesRequest`].
    pub const LANES: Handle = 112;
    /// Host to an ssh hop's agent: join the lanes; payload
    /// [`crate::lanes::JoinLanes`].
    pub const LANES_JOIN: Handle = 113;
    /// Host to an ssh hop's agent, read by the stream itself: the frames
    /// after this one go round the lanes ([`crate::lanes::switch_frame`]).
    pub const LANES_SWITCH: Handle = 114;
    /// Shim to host: open a session; payload [`super::SessionRequest`].
    pub const SESSION_OPEN: Handle = 120;
    /// Shim to agent (via the host): stdin bytes.
    pub const SESSION_STDIN: Handle = 121;
    /// Shim to agent (via the host): [`super::SessionControl`].
    pub const SESSION_CONTROL: Handle = 122;
    /// Agent to shim: stdout bytes.
    pub const SESSION_STDOUT: Handle = 123;
    /// Agent to shim: stderr bytes.
    pub const SESSION_STDERR: Handle = 124;
    /// Agent or host to shim: [`super::SessionEvent`].
    pub const SESSION_EVENT: Handle = 125;
    /// `reply_to` value that marks a dead message; the payload is the reason.
    pub const IS_DEAD: Handle = 999;
    /// First handle handed out for replies.
    pub const FIRST_DYNAMIC: Handle = 1000;
}

/// Error decoding a CBOR payload.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} payload: {reason}")]
pub struct PayloadError {
    pub what: &'static str,
    pub reason: String,
}

impl Frame {
    /// A frame with a CBOR payload.
    pub fn cbor<T: Serialize>(header: Header, value: &T) -> Frame {
        let mut out = Vec::with_capacity(64);
        ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec cannot fail");
        Frame {
            header,
            encoding: Encoding::Cbor,
            payload: Bytes::from(out),
        }
    }

    /// A frame with a raw-bytes payload.
    pub fn data(header: Header, payload: Bytes) -> Frame {
        Frame {
            header,
            encoding: Encoding::Bytes,
            payload,
        }
    }

    /// A dead message for `dst:handle`, carrying `reason`.
    pub fn dead(src: ContextId, dst: ContextId, handle: Handle, reason: &str) -> Frame {
        Frame::data(
            Header {
                dst,
                src,
                auth: src,
                handle,
                reply_to: handle::IS_DEAD,
            },
            Bytes::copy_from_slice(reason.as_bytes()),
        )
    }

    /// Whether this is a dead message.
    pub fn is_dead(&self) -> bool {
        self.header.reply_to == handle::IS_DEAD
    }

    /// The reason text of a dead message.
    pub fn dead_reason(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// Decode a CBOR payload as `T`; `what` names it in the error.
    pub fn decode_cbor<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, PayloadError> {
        if self.encoding != Encoding::Cbor {
            return Err(PayloadError {
                what,
                reason: "expected CBOR, got raw bytes".into(),
            });
        }
        ciborium::from_reader(&self.payload[..]).map_err(|e| PayloadError {
            what,
            reason: e.to_string(),
        })
    }
}

/// First frame a parent sends a freshly started agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentConfig {
    pub context_id: ContextId,
    /// Ancestors, nearest first; the last is the host.
    pub parent_ids: Vec<ContextId>,
    pub max_payload: u32,
    /// 0 = errors only, 1 = warnings, 2 = info, 3 = debug, 4 = trace.
    pub log_level: u8,
    /// What to call this context in messages, e.g. `local` or `ssh:web1`.
    pub name: String,
}

/// The agent's answer once its router runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentHello {
    pub version: String,
    pub pid: u32,
    pub user: String,
}

/// Payload of ADD_ROUTE / DEL_ROUTE.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteUpdate {
    pub context: ContextId,
    /// Why a route went away (DEL_ROUTE only).
    pub reason: String,
}

/// A password in transit. Its `Debug` never shows the text, so it cannot
/// leak into a log line, whatever the verbosity, and its bytes are
/// overwritten with zeros when it is dropped (each clone zeroes its own).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Host to an agent: start `hop` as context `new_id`. Reply: a CBOR
/// `Result<(), ConnectFailure>` on `reply_to`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectRequest {
    pub new_id: ContextId,
    pub hop: Hop,
    pub name: String,
    pub log_level: u8,
    /// For sudo/su/doas prompts; sent once, never stored.
    pub password: Option<Secret>,
    /// `--agent-dir`: the only place to keep the agent on the far side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_dir: Option<String>,
}

/// Why a hop could not be started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectFailure {
    pub message: String,
    /// The hop asked for a password and none was given: the host may ask
    /// the user and try again.
    pub password_required: bool,
}

impl ConnectFailure {
    pub fn new(message: impl Into<String>) -> ConnectFailure {
        ConnectFailure {
            message: message.into(),
            password_required: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let req = ConnectRequest {
            new_id: 2,
            hop: Hop::Sudo {
                user: "root".into(),
            },
            name: "x".into(),
            log_level: 4,
            password: Some(Secret("hunter2".into())),
            agent_dir: None,
        };
        assert!(!format!("{req:?}").contains("hunter2"));
    }

    #[test]
    fn cbor_round_trip() {
        let config = AgentConfig {
            context_id: 3,
            parent_ids: vec![1, 0],
            max_payload: 1 << 20,
            log_level: 2,
            name: "local,sudo:root".into(),
        };
        let f = Frame::cbor(Header::default(), &config);
        assert_eq!(
            f.decode_cbor::<AgentConfig>("agent config").unwrap(),
            config
        );
        assert!(f.decode_cbor::<RouteUpdate>("route update").is_err());
        let bad = Frame::data(Header::default(), Bytes::from_static(b"\xff\x00"));
        assert!(bad.decode_cbor::<AgentConfig>("agent config").is_err());
    }
}
