//! The streams a router is attached to: where each one's frames go (what
//! each one may route is in [`super::table`]), and how much may wait there.
//!
//! Every queue is bounded in bytes, whoever fills it:
//!
//! - a byte stream's write queue holds at most [`STREAM_QUEUE_BYTES`]
//!   (8 MiB) of frames, whatever their origin; a sender, or the reader of
//!   the stream a forwarded frame came from, waits for room. Bulk data
//!   besides takes turns within [`STREAM_QUEUE_BUDGET`] (1 MiB).
//! - a session's inbox in this process holds at most
//!   [`SESSION_QUEUE_BYTES`] (about 6.1 MiB: a full credit window on each
//!   of three streams, and control frames). Its peer's credit keeps an
//!   honest peer below that, so a frame from another process that would go
//!   beyond it is refused when it arrives, and the stream it came from is
//!   cut off; nothing waits for the consumer.
//!
//! Each frame counts its payload, and at least [`MIN_FRAME_COST`] (512
//! bytes), so the bounds hold for frame counts too.
//!
//! [`STREAM_QUEUE_BUDGET`]: super::turn::STREAM_QUEUE_BUDGET

use std::sync::Arc;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use proto::frame::Frame;
use proto::message::ContextId;
#[cfg(doc)]
use proto::session::SESSION_QUEUE;
use proto::session::{MIN_FRAME_COST, SESSION_WINDOW};

/// Frames that may wait in one byte stream's write queue (the bytes are
/// bounded by [`STREAM_QUEUE_BYTES`]; this bounds the bookkeeping).
pub const STREAM_QUEUE: usize = 8192;

/// Bytes that may wait in one byte stream's write queue.
pub const STREAM_QUEUE_BYTES: usize = 8 << 20;

/// Bytes that may wait in a session's inbox at first: a full initial window
/// of the smallest frames on each of its three streams, and control
/// frames. The inbox widens by exactly what an output's window grows
/// ([`Outlet::widen`], on the client end's own decision), so it never holds
/// more than the session's windows allow; at most [`SESSION_QUEUE`] frames.
pub const SESSION_QUEUE_BYTES: usize =
    (3 * (SESSION_WINDOW / MIN_FRAME_COST) as usize + 256) * MIN_FRAME_COST as usize;

/// What a frame counts against a byte bound.
fn cost(frame: &Frame) -> usize {
    frame.payload.len().max(MIN_FRAME_COST as usize)
}

/// A frame in a stream's write queue, holding its share of the budgets
/// until it has been written.
pub struct Queued {
    pub frame: Frame,
    pub _budget: Option<OwnedSemaphorePermit>,
    pub _bytes: OwnedSemaphorePermit,
}

/// Where a stream's frames go: a byte stream's writer task, or an
/// in-process consumer that takes frames from a [`FrameInbox`].
#[derive(Clone)]
pub struct Outlet {
    kind: OutletKind,
    /// What may wait in the queue, in bytes.
    bytes: Arc<Semaphore>,
}

#[derive(Clone)]
enum OutletKind {
    Writer(mpsc::Sender<Queued>),
    Channel(mpsc::Sender<(Frame, OwnedSemaphorePermit)>),
}

/// What became of a frame given to an [`Outlet`].
#[derive(Debug, PartialEq, Eq)]
pub enum Handed {
    Queued,
    /// The stream is gone.
    Closed,
    /// A frame from another process would go beyond an inbox's bound: the
    /// stream it came from is to be cut off.
    OverBound(usize),
}

impl Outlet {
    /// The writing end of a byte stream's queue, and its reading end.
    pub fn writer() -> (Outlet, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let outlet = Outlet {
            kind: OutletKind::Writer(tx),
            bytes: Arc::new(Semaphore::new(STREAM_QUEUE_BYTES)),
        };
        (outlet, rx)
    }

    /// An in-process inbox holding at most `frames` frames, and as many
    /// times [`MIN_FRAME_COST`] bytes.
    pub fn inbox(frames: usize) -> (Outlet, FrameInbox) {
        Outlet::inbox_of(frames, frames.max(1) * MIN_FRAME_COST as usize)
    }

    /// An in-process inbox holding at most `frames` frames and `bytes`
    /// bytes (until [`widen`](Outlet::widen)ed).
    pub fn inbox_of(frames: usize, bytes: usize) -> (Outlet, FrameInbox) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let outlet = Outlet {
            kind: OutletKind::Channel(tx),
            bytes: Arc::new(Semaphore::new(bytes)),
        };
        (outlet, FrameInbox { rx })
    }

    /// Let `bytes` more wait here (a session whose window grew).
    pub fn widen(&self, bytes: usize) {
        self.bytes.add_permits(bytes);
    }

    /// Queue `frame`. A byte stream's queue makes any sender wait for room;
    /// an inbox makes this context's own senders wait, and refuses a frame
    /// that came from another process (`forwarded`) beyond its bound.
    pub async fn send(
        &self,
        frame: Frame,
        budget: Option<OwnedSemaphorePermit>,
        forwarded: bool,
    ) -> Handed {
        let need = cost(&frame).min(self.bytes_bound()) as u32;
        let permit = match (&self.kind, forwarded) {
            (OutletKind::Channel(_), true) => match self.bytes.clone().try_acquire_many_owned(need)
            {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => return Handed::Closed,
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    return Handed::OverBound(self.bytes_bound());
                }
            },
            _ => match self.bytes.clone().acquire_many_owned(need).await {
                Ok(p) => p,
                Err(_) => return Handed::Closed,
            },
        };
        let sent = match &self.kind {
            OutletKind::Writer(tx) => tx
                .send(Queued {
                    frame,
                    _budget: budget,
                    _bytes: permit,
                })
                .await
                .is_ok(),
            OutletKind::Channel(tx) => tx.send((frame, permit)).await.is_ok(),
        };
        if sent { Handed::Queued } else { Handed::Closed }
    }

    fn bytes_bound(&self) -> usize {
        match self.kind {
            OutletKind::Writer(_) => STREAM_QUEUE_BYTES,
            OutletKind::Channel(ref tx) => tx.max_capacity() * MIN_FRAME_COST as usize,
        }
    }

    /// Release everyone waiting for room: the stream is gone.
    pub fn close(&self) {
        self.bytes.close();
    }
}

/// Frames for an in-process consumer (a session served here), each
/// counted against its inbox's bound until it is taken.
pub struct FrameInbox {
    rx: mpsc::Receiver<(Frame, OwnedSemaphorePermit)>,
}

impl FrameInbox {
    /// The next frame; `None` once the stream is gone and drained.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await.map(|(frame, _)| frame)
    }

    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        self.rx.try_recv().map(|(frame, _)| frame)
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
    /// Its lanes ([`crate::lanes`]), for a byte stream that may have them.
    pub staged: Option<crate::lanes::Staged>,
}
