//! The wire and the routing layer of mitogen-fakessh.
//!
//! Everything that crosses a process boundary between the host, the agents and
//! the shims is a [`Frame`]: a fixed big-endian header (as in Mitogen) and a
//! payload that is either CBOR or raw bytes. This crate knows nothing about
//! processes or ssh: it parses and writes frames ([`frame`]), buffers them over
//! a byte stream ([`connection`]), defines the payloads ([`message`]), routes
//! frames between streams by context id ([`router`]) and moves bulk data under
//! credit-based flow control ([`pump`]).

pub mod connection;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod pump;
pub mod router;

pub use frame::{Encoding, Frame, FrameError, Header};
pub use message::{ContextId, Handle};
pub use router::Router;
