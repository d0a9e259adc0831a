//! How a peer can break the session protocol.

use super::message::{DecodeError, OutputStream};

/// A peer broke the session protocol; the session ends with this message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the peer sent {len} bytes beyond its credit ({outstanding} of {window} in use)")]
    Overrun {
        len: usize,
        window: u64,
        outstanding: u64,
    },
    #[error("the peer granted {granted} bytes of credit with only {in_flight} in flight")]
    CreditBeyondSent { granted: u64, in_flight: u64 },
    #[error("the peer raised a window to {window} bytes, beyond the {max} allowed")]
    WindowBeyondMax { window: u64, max: u32 },
    #[error("{0:?} data after its end of file")]
    DataAfterEof(OutputStream),
    #[error("stdin data after its end of file")]
    StdinAfterEof,
    #[error("stdin data for a listener, which takes none")]
    StdinToListener,
    #[error("the session queue overflowed: the peer ignores flow control")]
    QueueFull,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
