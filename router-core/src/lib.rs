//! The wire, the routing layer and the session protocol of mitogen-fakessh.
//!
//! Everything that crosses a process boundary between the host, the agents and
//! the shims is a [`Frame`]: a fixed big-endian header (as in Mitogen:
//! `Message.HEADER_FMT = '>hLLLLLL'` in its `mitogen/core.py`) and a
//! payload that is either CBOR or raw bytes. This crate knows nothing about
//! processes or ssh. Read it in this order:
//!
//! - [`frame`]: one frame, parsed and written;
//! - [`connection`]: frames over a byte stream, buffered;
//! - [`message`]: context ids, handles and the control payloads;
//! - [`hop`]: the chain grammar, and the hop a parent asks an agent to start;
//! - [`router`]: frames routed between streams by context id;
//! - [`session`]: one ssh invocation as typed messages and two I/O-free
//!   state machines (flow control, EOF, exit ordering, signals);
//! - [`pump`]: bulk data onto the router under credit, taking turns;
//! - [`text`]: remote text made safe to print in our own diagnostics.
//! - [`unix_listener`]: Unix socket listeners that only their owner can
//!   connect to, with no window after the bind.

pub mod connection;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod hop;
pub mod message;
pub mod pump;
pub mod router;
pub mod session;
pub mod text;
pub mod unix_listener;

pub use frame::{Encoding, Frame, FrameError, Header};
pub use message::{ContextId, Handle};
pub use router::Router;
