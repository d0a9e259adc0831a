//! A new agent's first frames, both halves, as builders and checkers.
//!
//! The parent (host or agent) starts the child with its transport on the
//! child's stdin/stdout. The child says [`AgentHello`] on `CONTEXT_READY` as
//! soon as it runs, unasked ([`hello_frame`]); the parent sends
//! [`AgentConfig`] as the first frame ([`config_frame`]) and waits for that
//! hello ([`check_hello`]); the child waits for the config
//! ([`check_config`]). Only then is the stream attached to a router, so no
//! frame is ever routed to a half-started context; and the first session's
//! frames follow the config at once (the hello does not wait for the
//! config: one round trip less per hop). Both sides wait at most
//! [`CONNECT_TIMEOUT`]; the waiting is the drivers'.

use std::time::Duration;

use crate::frame::{Frame, Header};
use crate::message::{AgentConfig, AgentHello, Handle, PayloadError, handle};

/// How long a new agent may take to say hello, and an agent to be told who
/// it is.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A first frame that is not the one the handshake expects.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("agent sent an unexpected first frame (handle {0})")]
    UnexpectedFrame(Handle),
    #[error("the parent sent an unexpected first frame (handle {0})")]
    UnexpectedConfig(Handle),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("configuration names no parent")]
    NoParent,
}

/// The child's first frame: who it is, unaddressed (it does not know its
/// context id yet).
pub fn hello_frame(hello: &AgentHello) -> Frame {
    Frame::cbor(ready_header(0, 0), hello)
}

/// The parent's first frame to a new child: its configuration, sent with
/// the parent's authority.
pub fn config_frame(config: &AgentConfig) -> Frame {
    let parent = config.parent_ids.first().copied().unwrap_or_default();
    Frame::cbor(ready_header(config.context_id, parent), config)
}

/// The parent's check of the child's first frame.
pub fn check_hello(frame: &Frame) -> Result<AgentHello, HandshakeError> {
    if frame.header.handle != handle::CONTEXT_READY {
        return Err(HandshakeError::UnexpectedFrame(frame.header.handle));
    }
    Ok(frame.decode_cbor("agent hello")?)
}

/// The child's check of the parent's first frame.
pub fn check_config(frame: &Frame) -> Result<AgentConfig, HandshakeError> {
    if frame.header.handle != handle::CONTEXT_READY {
        return Err(HandshakeError::UnexpectedConfig(frame.header.handle));
    }
    let config: AgentConfig = frame.decode_cbor("agent config")?;
    if config.parent_ids.is_empty() {
        return Err(HandshakeError::NoParent);
    }
    Ok(config)
}

fn ready_header(dst: u32, src: u32) -> Header {
    Header {
        dst,
        src,
        auth: src,
        handle: handle::CONTEXT_READY,
        reply_to: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            context_id: 3,
            parent_ids: vec![1, 0],
            max_payload: 1 << 20,
            log_level: 1,
            name: "ssh:web1".into(),
        }
    }

    #[test]
    fn both_halves_agree() {
        let hello = AgentHello {
            version: "0.1.0".into(),
            pid: 42,
            user: "deploy".into(),
        };
        assert_eq!(check_hello(&hello_frame(&hello)).unwrap(), hello);
        let frame = config_frame(&config());
        assert_eq!(check_config(&frame).unwrap(), config());
        assert_eq!((frame.header.dst, frame.header.auth), (3, 1));
    }

    #[test]
    fn wrong_first_frames_are_refused() {
        let mut frame = config_frame(&config());
        frame.header.handle = handle::SPAWN;
        assert!(matches!(
            check_config(&frame),
            Err(HandshakeError::UnexpectedConfig(h)) if h == handle::SPAWN
        ));
        assert!(matches!(
            check_hello(&frame),
            Err(HandshakeError::UnexpectedFrame(_))
        ));
        let orphan = AgentConfig {
            parent_ids: vec![],
            ..config()
        };
        assert!(matches!(
            check_config(&config_frame(&orphan)),
            Err(HandshakeError::NoParent)
        ));
        // A hello where a config should be: not CBOR of the right shape.
        let hello = hello_frame(&AgentHello {
            version: String::new(),
            pid: 1,
            user: String::new(),
        });
        assert!(matches!(
            check_config(&hello),
            Err(HandshakeError::Payload(_))
        ));
    }
}
