//! Sharing one stream among many bulk senders: a byte budget for its write
//! queue, and turns.

use tokio::sync::OwnedMutexGuard;

/// Payload bytes of paced frames (see [`Router::send_paced`]) that may wait
/// in one stream's write queue. Without it, 64 sessions each with a full
/// window queue 64 MiB in front of one ssh channel: the host's memory grows
/// past 100 MiB and every byte is copied out of cold cache. With it the data
/// waits in the senders' own pipes and sockets, and the queue stays small
/// enough to keep the writer busy and its bytes warm.
///
/// [`Router::send_paced`]: super::routes::Router::send_paced
pub const STREAM_QUEUE_BUDGET: usize = 1 << 20;

/// Bulk data one sender may move onto a stream in a single turn (see
/// [`Router::take_turn`]) before the next waiting sender goes.
///
/// [`Router::take_turn`]: super::routes::Router::take_turn
pub const TURN_BYTES: usize = 1 << 20;

/// Frames this small (keystrokes, prompts, short replies) do not wait for a
/// turn, only for queue room, so an interactive session is not queued
/// behind 64 bulk turns.
pub const TURN_EXEMPT: usize = 1024;

/// A sender's turn at a stream's write queue; dropping it hands the turn to
/// the next sender in line.
///
/// Why turns: with the queue budget alone, 64 sessions each add one chunk
/// in round-robin, so all 64 pipelines (their pipes, sockets, processes) are
/// in use at once and every chunk is copied out of cold cache. A sender that
/// keeps the turn while it has data ready moves a run of chunks through one
/// warm pipeline. One that would have to wait (no data, no credit) gives the
/// turn back at once, so nobody waits behind an idle or stalled session.
pub struct Turn {
    _guard: OwnedMutexGuard<()>,
    sent: usize,
}

impl Turn {
    /// The turn held through `guard`.
    pub fn new(guard: OwnedMutexGuard<()>) -> Turn {
        Turn {
            _guard: guard,
            sent: 0,
        }
    }

    /// Count `n` bytes sent in this turn; false once the turn is used up.
    pub fn spend(&mut self, n: usize) -> bool {
        self.sent += n;
        self.sent < TURN_BYTES
    }
}
