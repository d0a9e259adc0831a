//! The session protocol: one `ssh` invocation, from the shim's request to
//! the remote command's exit status.
//!
//! ```text
//!  client end (shim, or host for          command end (agent)
//!  the stdio a shim handed over)
//!        |  SessionRequest --> host --> SpawnRequest  |
//!        |  ToCommand::Stdin / Control  ------------> |   CommandSession
//!        |  <------------  ToClient::Output / Event   |
//!   ClientSession
//! ```
//!
//! Everything here is free of I/O: [`message`] turns frames into typed
//! messages and back, [`credit`] does the flow-control accounting, and
//! [`ClientSession`] and [`CommandSession`] are the state machines of the two
//! ends. The shim, the host's relay, the host's tunnels and the agent are
//! thin drivers: they feed in what arrived or what their I/O did, and carry
//! out the actions the state machine hands back. The rules live here once:
//!
//! - credit windows in both directions, checked on both sides;
//! - stdin EOF closes only the command's stdin;
//! - output is written in the order it came, and the exit status is handed
//!   out only after all output has been written;
//! - a reader that went away closes that stream only (the command gets EPIPE);
//! - signals go to the command, window changes only to a pty session.

pub mod client;
pub mod command;
pub mod credit;
pub mod message;

pub use client::{ClientAction, ClientSession, Ending, Side};
pub use command::{CommandAction, CommandSession};
pub use credit::{MIN_FRAME_COST, RecvCredit, SendCredit, frame_cost};
pub use message::{
    ExitStatus, OutputStream, PtyRequest, RemoteCommand, SessionControl, SessionEvent,
    SessionRequest, SpawnRequest, ToClient, ToCommand, header,
};

use crate::message::{Handle, PayloadError};

/// Credit each end of a session starts with, per direction and stream. It
/// bounds the bytes (and, through [`MIN_FRAME_COST`], the frames) in flight
/// per stream, and with them every queue.
pub const SESSION_WINDOW: u32 = 1 << 20;
/// Largest data chunk put in one frame.
pub const DATA_CHUNK: usize = 128 << 10;
/// Frames one session may have queued at a receiver: a full window of the
/// smallest frames on each of three streams, and room for control frames.
pub const SESSION_QUEUE: usize = 3 * (SESSION_WINDOW / MIN_FRAME_COST) as usize + 256;

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
    #[error("{0:?} data after its end of file")]
    DataAfterEof(OutputStream),
    #[error("stdin data after its end of file")]
    StdinAfterEof,
    #[error("a frame for handle {0} does not belong to a session")]
    UnexpectedHandle(Handle),
    #[error("a frame for handle {0} carries CBOR where data belongs")]
    ExpectedData(Handle),
    #[error("the first frame has handle {0}, not a session request")]
    NotARequest(Handle),
    #[error("the session queue overflowed: the peer ignores flow control")]
    QueueFull,
    #[error(transparent)]
    Payload(#[from] PayloadError),
}
