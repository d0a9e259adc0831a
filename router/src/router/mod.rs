//! The router: which stream leads to which context, and local mailboxes.
//!
//! Each context (host, agent) has one router. Streams are byte connections to
//! neighbouring contexts: at most one parent, any number of children. A frame
//! for this context goes to the mailbox registered for its handle; a frame for
//! a context learned through ADD_ROUTE goes down that stream; anything else
//! goes up to the parent. Frames that cannot be delivered produce a dead
//! message (with the reason as text) to the sender's `reply_to`.
//!
//! Source verification follows Mitogen (`Router._async_route` in its
//! `mitogen/core.py`, "bad auth_id" and "bad src_id"): a frame is accepted
//! from a stream only if that stream is the one this router would use to
//! reach the frame's `auth` context *and* its `src`, so a child can never
//! speak with its parent's authority or as anybody else. A child's frames
//! go up or to this context, never across to a sibling, except to a
//! session stream bound to that child's context; a route is claimed only
//! for a CONNECT this router passed down. The rules are written once, in
//! [`table`], as decisions without I/O. A stream that breaks one is cut off.
//!
//! Every queue is bounded in bytes ([`stream`] says how much): sending waits
//! for room, so a peer that does not read slows its senders down instead of
//! making us buffer without limit, and a peer that sends beyond a session's
//! bound is cut off.
//!
//! - [`table`]: the routing table and its trust rules, without I/O (it
//!   lives in [`proto::route_table`]);
//! - [`routes`]: the [`Router`], its routes and mailboxes;
//! - [`stream`]: what is kept per attached stream;
//! - [`attach`]: the tasks that read and write a byte stream;
//! - [`turn`]: how bulk senders share a stream.

pub mod attach;
pub mod routes;
pub mod stream;
pub mod turn;

pub use proto::route_table as table;
pub use routes::{Router, RouterEvent};
pub use stream::{FrameInbox, SESSION_QUEUE_BYTES, STREAM_QUEUE, STREAM_QUEUE_BYTES};
pub use table::{StreamId, StreamRole};
pub use turn::{STREAM_QUEUE_BUDGET, TURN_BYTES, TURN_EXEMPT, Turn};
