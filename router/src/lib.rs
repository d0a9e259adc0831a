//! The tokio drivers of the mitogen-fakessh protocol: frames over byte
//! streams, the router that carries out the [`proto`] crate's routing
//! decisions, and the pump that moves bulk data under the session credit.
//! What a frame is, who may send it and what a session does with it is
//! decided in [`proto`] (no I/O); this crate does the waiting and the
//! moving. It knows nothing about processes or ssh. Read it in this order:
//!
//! - [`connection`]: frames over a byte stream, buffered;
//! - [`lanes`]: a stream's frames round several byte streams;
//! - [`router`]: frames routed between streams by context id, as
//!   [`proto::route_table`] decides;
//! - [`pump`]: bulk data onto the router, taking turns;
//! - [`session_link`]: one session's two ends, as every driver addresses
//!   its frames;
//! - [`client_end`]: the one async driver of a session's client end;
//! - [`unix_listener`]: Unix socket listeners that only their owner can
//!   connect to, with no window after the bind.
//!
//! The protocol's modules are re-exported under their old paths
//! (`router::frame`, `router::session`, ...), so drivers name one
//! crate.

pub mod client_end;
pub mod connection;
pub mod lanes;
pub mod pump;
pub mod router;
pub mod session_link;
pub mod unix_listener;

#[doc(hidden)]
pub use proto::fuzzing;
pub use proto::lanes as lane_rules;
pub use proto::{agent_request, control, frame, handshake, hop, message, session, text};

pub use frame::{Encoding, Frame, FrameError, Header};
pub use message::{ContextId, Handle};
pub use router::Router;
