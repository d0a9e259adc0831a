//! The protocol of mitogen-fakessh, with no I/O: what crosses a process
//! boundary between the host, the agents and the shims, and the rules that
//! decide what each side does with it. Nothing here reads a socket, spawns a
//! task or waits; the drivers do (the `router` crate's tokio router and pump, the
//! shims' blocking loop), and they all follow these decisions. The manifest
//! makes that a compiler fact: no async runtime is among the dependencies.
//!
//! Read it in this order:
//!
//! - [`frame`]: one frame, parsed and written: a fixed big-endian header (as
//!   in Mitogen: `Message.HEADER_FMT = '>hLLLLLL'` in its `mitogen/core.py`)
//!   and a payload that is either CBOR or raw bytes;
//! - [`message`]: context ids, handles and the control payloads;
//! - [`hop`]: the chain grammar, and the hop a parent asks an agent to start;
//! - [`handshake`]: a new agent's first frames, both halves;
//! - [`agent_request`]: what an agent is asked, typed, and who may ask it;
//! - [`lanes`]: more SSH channels for one stream where one channel's
//!   window is the limit, and the turn the frames take round them;
//! - [`control`]: the control socket's messages between the host and its
//!   clients (shims, `status`, `stop`, `exec`);
//! - [`route_table`]: where a frame may go and who may send it (the trust
//!   rules), as decisions;
//! - [`session`]: one ssh invocation as typed messages and two state
//!   machines (flow control, EOF, exit ordering, signals);
//! - [`text`]: remote text made safe to print in our own diagnostics.

pub mod agent_request;
pub mod control;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod hop;
pub mod lanes;
pub mod message;
pub mod route_table;
pub mod session;
pub mod text;

pub use frame::{Encoding, Frame, FrameError, Header};
pub use message::{ContextId, Handle};
