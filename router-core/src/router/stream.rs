//! The streams a router is attached to: where each one's frames go (what
//! each one may route is in [`super::table`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::frame::Frame;
use crate::message::ContextId;

/// Frames that may wait in one byte stream's write queue. Bulk data is held
/// to [`STREAM_QUEUE_BUDGET`](super::turn::STREAM_QUEUE_BUDGET) bytes besides;
/// credit frames are at most one per data frame, and a session's window
/// bounds its data frames (see `session::credit`), so a full queue means a
/// peer that does not read: its senders wait, nothing piles up.
pub const STREAM_QUEUE: usize = 8192;

/// A frame in a stream's write queue, holding its share of the budget until
/// it has been written.
pub struct Queued {
    pub frame: Frame,
    pub _budget: Option<OwnedSemaphorePermit>,
}

/// Where a stream's frames go: a byte stream's writer task, or an
/// in-process consumer that takes frames as they come (no pacing there).
#[derive(Clone)]
pub enum Outlet {
    Writer(mpsc::Sender<Queued>),
    Channel(mpsc::Sender<Frame>),
}

impl Outlet {
    /// Queue `frame`, waiting for room; false once the stream is gone.
    pub async fn send(&self, frame: Frame, budget: Option<OwnedSemaphorePermit>) -> bool {
        match self {
            Outlet::Writer(tx) => tx
                .send(Queued {
                    frame,
                    _budget: budget,
                })
                .await
                .is_ok(),
            Outlet::Channel(tx) => tx.send(frame).await.is_ok(),
        }
    }
}

pub struct StreamEntry {
    pub name: String,
    pub remote_id: ContextId,
    pub outlet: Outlet,
    /// Paced senders wait here; closed when the stream goes.
    pub budget: Arc<Semaphore>,
    /// Bulk senders sharing this stream take turns ([`super::turn::Turn`]).
    pub turn: Arc<tokio::sync::Mutex<()>>,
    pub reader: Option<tokio::task::AbortHandle>,
}
