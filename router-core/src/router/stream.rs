//! The streams a router is attached to: where each one's frames go, and the
//! tasks that read and write a byte stream.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, warn};

use super::Router;
use crate::connection::{FrameReader, FrameWriter, ReadError};
use crate::frame::Frame;
use crate::message::ContextId;

/// Identifies one attached stream inside a router.
pub type StreamId = u64;

/// Frames that may wait in one byte stream's write queue. Bulk data is held
/// to [`STREAM_QUEUE_BUDGET`](super::STREAM_QUEUE_BUDGET) bytes besides;
/// credit frames are at most one per data frame, and a session's window
/// bounds its data frames (see `session::credit`), so a full queue means a
/// peer that does not read: its senders wait, nothing piles up.
pub const STREAM_QUEUE: usize = 8192;

/// Where a stream sits relative to this context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRole {
    Parent,
    Child,
}

/// A frame in a stream's write queue, holding its share of the budget until
/// it has been written.
pub(super) struct Queued {
    pub frame: Frame,
    pub _budget: Option<OwnedSemaphorePermit>,
}

/// Where a stream's frames go: a byte stream's writer task, or an
/// in-process consumer that takes frames as they come (no pacing there).
#[derive(Clone)]
pub(super) enum Outlet {
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

pub(super) struct StreamEntry {
    pub name: String,
    pub remote_id: ContextId,
    pub outlet: Outlet,
    /// Paced senders wait here; closed when the stream goes.
    pub budget: Arc<Semaphore>,
    /// Bulk senders sharing this stream take turns ([`super::Turn`]).
    pub turn: Arc<tokio::sync::Mutex<()>>,
    /// Contexts reached through this stream (its own id included for children).
    pub routed: HashSet<ContextId>,
    pub reader: Option<tokio::task::AbortHandle>,
}

impl Router {
    /// Attach a byte stream: spawn its writer and reader tasks. When the
    /// reader ends (EOF or a bad frame) the stream is removed and every
    /// context behind it is reported lost.
    pub async fn attach<R, W>(
        self: &Arc<Self>,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        reader: FrameReader<R>,
        writer: FrameWriter<W>,
    ) -> StreamId
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let sid = self.attach_writer(name, remote_id, role, writer).await;
        let task = tokio::spawn(read_loop(self.clone(), sid, name.to_string(), reader));
        self.set_reader(sid, task.abort_handle());
        sid
    }

    /// Attach only the writing half of a stream; the caller reads the other
    /// half itself (the host does this for shim sessions, whose frames it
    /// re-addresses before routing).
    pub async fn attach_writer<W>(
        self: &Arc<Self>,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        writer: FrameWriter<W>,
    ) -> StreamId
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let sid = self
            .register_stream(name, remote_id, role, Outlet::Writer(tx))
            .await;
        tokio::spawn(write_loop(self.clone(), sid, name.to_string(), writer, rx));
        sid
    }

    /// Register a stream whose frames the caller consumes from the returned
    /// receiver (at most `capacity` waiting). A child's `remote_id` becomes
    /// routable at once.
    pub async fn add_stream(
        &self,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        capacity: usize,
    ) -> (StreamId, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity);
        let sid = self
            .register_stream(name, remote_id, role, Outlet::Channel(tx))
            .await;
        (sid, rx)
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    router: Arc<Router>,
    sid: StreamId,
    name: String,
    mut reader: FrameReader<R>,
) {
    let reason = loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => router.route(frame, Some(sid)).await,
            Ok(None) => break format!("{name}: connection closed"),
            // A reset is how a peer that was killed or torn down goes away:
            // the loss is reported through the router; not worth a warning.
            Err(ReadError::Io(e)) => {
                debug!("{name}: {e}; closing that stream");
                break format!("{name}: {e}");
            }
            Err(e) => {
                warn!("{name}: {e}; closing that stream");
                break format!("{name}: {e}");
            }
        }
    };
    router.remove_stream(sid, &reason).await;
}

async fn write_loop<W: AsyncWrite + Unpin>(
    router: Arc<Router>,
    sid: StreamId,
    name: String,
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Queued>,
) {
    while let Some(queued) = rx.recv().await {
        let mut result = writer.write_frame(&queued.frame).await;
        drop(queued);
        while result.is_ok() {
            match rx.try_recv() {
                Ok(next) => result = writer.write_frame(&next.frame).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(writer.flush().await) {
            debug!("{name}: write failed: {e}");
            router
                .remove_stream(sid, &format!("{name}: write failed: {e}"))
                .await;
            return;
        }
    }
    let _ = writer.shutdown().await;
}
