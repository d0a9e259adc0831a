//! Attaching streams to a router: the tasks that read a byte stream's
//! frames into the router and write its queue out, and in-process streams.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::routes::Router;
use super::stream::{FrameInbox, Outlet, Queued, SESSION_QUEUE_BYTES};
use super::table::{StreamId, StreamRole};
use crate::connection::{FrameReader, FrameWriter, ReadError};
use crate::lanes::{LaneReader, LaneWriter, Staged};
use proto::message::ContextId;
use proto::session::SESSION_QUEUE;

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
        let staged = Staged::default();
        self.attach_with_lanes(name, remote_id, role, reader, writer, staged)
            .await
    }

    /// [`attach`](Router::attach) a stream that may go round more lanes
    /// ([`crate::lanes`]): its writer takes the lanes `staged` holds at a
    /// switch frame it writes, and, for our parent stream, its reader
    /// those it holds at a switch frame it reads.
    pub async fn attach_with_lanes<R, W>(
        self: &Arc<Self>,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        reader: FrameReader<R>,
        writer: FrameWriter<W>,
        staged: Staged,
    ) -> StreamId
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let sid = self
            .spawn_writer(name, remote_id, role, writer, staged.clone())
            .await;
        let mut reader = LaneReader::new(reader, self.max_payload());
        if role == StreamRole::Parent {
            reader = reader.switchable(self.my_id(), staged);
        }
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
        self.spawn_writer(name, remote_id, role, writer, Staged::default())
            .await
    }

    /// Register a byte stream and spawn the task that writes its queue out,
    /// round the lanes `staged` will hold at the switch.
    async fn spawn_writer<W>(
        self: &Arc<Self>,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        writer: FrameWriter<W>,
        staged: Staged,
    ) -> StreamId
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let writer = LaneWriter::new(writer, remote_id, staged.clone());
        let (outlet, rx) = Outlet::writer();
        let sid = self
            .register_stream(name, remote_id, role, false, outlet)
            .await;
        self.set_staged(sid, staged);
        tokio::spawn(write_loop(self.clone(), sid, name.to_string(), writer, rx));
        sid
    }

    pub(super) fn set_staged(&self, sid: StreamId, staged: crate::lanes::Staged) {
        if let Some(entry) = self.lock().streams.get_mut(&sid) {
            entry.staged = Some(staged);
        }
    }

    /// A session's stdin toward `ctx` is held back by its window on a long
    /// path: the stream that leads there may add lanes
    /// ([`crate::lanes::Staged::wanted`]).
    pub fn want_lanes(&self, ctx: ContextId) {
        if let Some(staged) = self.staged_toward(ctx) {
            staged.want();
        }
    }

    /// The lanes the stream toward `ctx` goes round (1 without lanes): a
    /// push through it may carry more once they join.
    pub fn lanes_toward(&self, ctx: ContextId) -> usize {
        self.staged_toward(ctx).map_or(1, |staged| staged.lanes())
    }

    /// The lanes of the stream that leads to `ctx`, if it may have any.
    fn staged_toward(&self, ctx: ContextId) -> Option<crate::lanes::Staged> {
        let inner = self.lock();
        let sid = inner.table.toward(ctx)?;
        inner.streams.get(&sid)?.staged.clone()
    }

    /// Register a stream whose frames the caller consumes from the returned
    /// inbox (at most `capacity` frames waiting, see [`super::stream`]). A
    /// child's `remote_id` becomes routable at once.
    pub async fn add_stream(
        &self,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        capacity: usize,
    ) -> (StreamId, FrameInbox) {
        let (outlet, inbox) = Outlet::inbox(capacity);
        let sid = self
            .register_stream(name, remote_id, role, false, outlet)
            .await;
        (sid, inbox)
    }

    /// Register the stream that serves session `id` in this context (a
    /// shim's session, a tunnel), consumed from the returned inbox (at most
    /// [`SESSION_QUEUE`] frames and [`SESSION_QUEUE_BYTES`] waiting). It
    /// takes frames from other streams
    /// only once [`Router::bind_session`] has named the context that runs
    /// the session, and from nobody else.
    pub async fn add_session_stream(&self, name: &str, id: ContextId) -> (StreamId, FrameInbox) {
        let (outlet, inbox) = Outlet::inbox_of(SESSION_QUEUE, SESSION_QUEUE_BYTES);
        let sid = self
            .register_stream(name, id, StreamRole::Child, true, outlet)
            .await;
        (sid, inbox)
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    router: Arc<Router>,
    sid: StreamId,
    name: String,
    mut reader: LaneReader<R>,
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
    mut writer: LaneWriter<W>,
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
