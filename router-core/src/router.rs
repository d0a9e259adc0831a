//! The router: which stream leads to which context, and local mailboxes.
//!
//! Each context (host, agent) has one router. Streams are byte connections to
//! neighbouring contexts: at most one parent, any number of children. A frame
//! for this context goes to the mailbox registered for its handle; a frame for
//! a context learned through ADD_ROUTE goes down that stream; anything else
//! goes up to the parent. Frames that cannot be delivered produce a dead
//! message (with the reason as text) to the sender's `reply_to`.
//!
//! Source verification follows Mitogen: a frame is accepted from a stream only
//! if that stream is the one this router would use to reach the frame's
//! `auth` context, so a child can never speak with its parent's authority.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, trace, warn};

use crate::connection::{FrameReader, FrameWriter};
use crate::frame::{Frame, Header};
use crate::message::{ContextId, Handle, RouteUpdate, handle};

/// Identifies one attached stream inside a router.
pub type StreamId = u64;

/// Payload bytes of paced frames (see [`Router::send_paced`]) that may wait
/// in one stream's write queue. Without it, 64 sessions each with a full
/// window queue 64 MiB in front of one ssh channel: the host's memory grows
/// past 100 MiB and every byte is copied out of cold cache. With it the data
/// waits in the senders' own pipes and sockets, and the queue stays small
/// enough to keep the writer busy and its bytes warm.
pub const STREAM_QUEUE_BUDGET: usize = 1 << 20;

/// Bulk data one sender may move onto a stream in a single turn (see
/// [`Router::take_turn`]) before the next waiting sender goes.
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
    /// Count `n` bytes sent in this turn; false once the turn is used up.
    pub fn spend(&mut self, n: usize) -> bool {
        self.sent += n;
        self.sent < TURN_BYTES
    }
}

/// A frame in a stream's write queue, holding its share of the budget until
/// it has been written.
struct Queued {
    frame: Frame,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Where a stream's frames go: a byte stream's writer task, or an
/// in-process consumer that takes frames as they come (no pacing there).
enum Outlet {
    Writer(mpsc::UnboundedSender<Queued>),
    Channel(mpsc::UnboundedSender<Frame>),
}

/// Where a stream sits relative to this context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRole {
    Parent,
    Child,
}

/// Something the owner of a router must react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterEvent {
    /// A context below us is unreachable from now on.
    ContextLost { context: ContextId, reason: String },
    /// The stream to our parent is gone: an agent must shut down.
    ParentLost { reason: String },
}

struct StreamEntry {
    name: String,
    remote_id: ContextId,
    outlet: Outlet,
    /// Paced senders wait here; closed when the stream goes.
    budget: Arc<Semaphore>,
    /// Bulk senders sharing this stream take turns ([`Turn`]).
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Contexts reached through this stream (its own id included for children).
    routed: HashSet<ContextId>,
    reader: Option<tokio::task::AbortHandle>,
}

struct Inner {
    streams: HashMap<StreamId, StreamEntry>,
    routes: HashMap<ContextId, StreamId>,
    parent: Option<StreamId>,
    handlers: HashMap<Handle, mpsc::UnboundedSender<Frame>>,
    listeners: Vec<mpsc::UnboundedSender<RouterEvent>>,
    next_stream: StreamId,
    next_handle: Handle,
}

/// One context's router. Cheap to share: wrap in `Arc`.
pub struct Router {
    my_id: ContextId,
    parent_ids: Vec<ContextId>,
    max_payload: u32,
    inner: Mutex<Inner>,
}

impl Router {
    pub fn new(my_id: ContextId, parent_ids: Vec<ContextId>, max_payload: u32) -> Arc<Router> {
        Arc::new(Router {
            my_id,
            parent_ids,
            max_payload,
            inner: Mutex::new(Inner {
                streams: HashMap::new(),
                routes: HashMap::new(),
                parent: None,
                handlers: HashMap::new(),
                listeners: Vec::new(),
                next_stream: 1,
                next_handle: handle::FIRST_DYNAMIC,
            }),
        })
    }

    pub fn my_id(&self) -> ContextId {
        self.my_id
    }

    pub fn parent_ids(&self) -> &[ContextId] {
        &self.parent_ids
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Whether `id` is this context or one of its ancestors: only those may
    /// command it (spawn, connect, shutdown).
    pub fn is_ancestor_or_self(&self, id: ContextId) -> bool {
        id == self.my_id || self.parent_ids.contains(&id)
    }

    /// A header from this context, with our own authority.
    pub fn header(&self, dst: ContextId, handle: Handle) -> Header {
        Header {
            dst,
            src: self.my_id,
            auth: self.my_id,
            handle,
            reply_to: 0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receive router events (lost contexts, lost parent).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<RouterEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().listeners.push(tx);
        rx
    }

    /// Deliver frames for `handle` in this context to the returned receiver.
    pub fn register_handler(&self, handle: Handle) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().handlers.insert(handle, tx);
        rx
    }

    /// Deliver frames for all of `handles` to one receiver, in arrival order.
    /// Use this where order across handles matters (a session's spawn must
    /// be seen before its stdin).
    pub fn register_inbox(&self, handles: &[Handle]) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        for h in handles {
            inner.handlers.insert(*h, tx.clone());
        }
        rx
    }

    /// A fresh handle (for replies) and its receiver.
    pub fn alloc_handle(&self) -> (Handle, mpsc::UnboundedReceiver<Frame>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        let h = inner.next_handle;
        inner.next_handle = inner.next_handle.wrapping_add(1).max(handle::FIRST_DYNAMIC);
        inner.handlers.insert(h, tx);
        (h, rx)
    }

    pub fn remove_handler(&self, handle: Handle) {
        self.lock().handlers.remove(&handle);
    }

    /// Register a stream whose frames are written by the caller-supplied
    /// channel. A child's `remote_id` becomes routable at once.
    pub fn add_stream(
        &self,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        tx: mpsc::UnboundedSender<Frame>,
    ) -> StreamId {
        self.register_stream(name, remote_id, role, Outlet::Channel(tx))
    }

    fn register_stream(
        &self,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        outlet: Outlet,
    ) -> StreamId {
        let mut inner = self.lock();
        let sid = inner.next_stream;
        inner.next_stream += 1;
        let mut routed = HashSet::new();
        match role {
            StreamRole::Parent => inner.parent = Some(sid),
            StreamRole::Child => {
                inner.routes.insert(remote_id, sid);
                routed.insert(remote_id);
            }
        }
        inner.streams.insert(
            sid,
            StreamEntry {
                name: name.to_string(),
                remote_id,
                outlet,
                budget: Arc::new(Semaphore::new(STREAM_QUEUE_BUDGET)),
                turn: Arc::new(tokio::sync::Mutex::new(())),
                routed,
                reader: None,
            },
        );
        // A new child is a new route: tell our parent, so frames for it find
        // their way down from the host (Mitogen's ADD_ROUTE propagation).
        let announce = if role == StreamRole::Child {
            self.propagate_up(
                &inner,
                handle::ADD_ROUTE,
                RouteUpdate {
                    context: remote_id,
                    reason: String::new(),
                },
            )
        } else {
            vec![]
        };
        drop(inner);
        for (frame, from) in announce {
            self.route(frame, from);
        }
        sid
    }

    /// Attach a byte stream: spawn its writer and reader tasks. When the
    /// reader ends (EOF or a bad frame) the stream is removed and every
    /// context behind it is reported lost.
    pub fn attach<R, W>(
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
        let sid = self.attach_writer(name, remote_id, role, writer);
        let task = tokio::spawn(read_loop(self.clone(), sid, name.to_string(), reader));
        if let Some(entry) = self.lock().streams.get_mut(&sid) {
            entry.reader = Some(task.abort_handle());
        }
        sid
    }

    /// Attach only the writing half of a stream; the caller reads the other
    /// half itself (the host does this for shim sessions, whose frames it
    /// re-addresses before routing).
    pub fn attach_writer<W>(
        self: &Arc<Self>,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        writer: FrameWriter<W>,
    ) -> StreamId
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let sid = self.register_stream(name, remote_id, role, Outlet::Writer(tx));
        tokio::spawn(write_loop(self.clone(), sid, name.to_string(), writer, rx));
        sid
    }

    /// Send a frame originating in this context.
    pub fn send(&self, frame: Frame) {
        self.route(frame, None)
    }

    /// Send bulk data: first wait until the stream it leaves on has room in
    /// its write queue ([`STREAM_QUEUE_BUDGET`]). Waiters are served in
    /// order, so sessions sharing a stream take turns. Control frames use
    /// [`Router::send`] and never wait behind data.
    pub async fn send_paced(&self, frame: Frame) {
        let need = frame.payload.len().clamp(1, STREAM_QUEUE_BUDGET) as u32;
        let budget = {
            let inner = self.lock();
            inner
                .stream_toward(self.my_id, frame.header.dst)
                .and_then(|sid| inner.streams.get(&sid))
                .map(|s| s.budget.clone())
        };
        // A closed budget means the stream went: routing reports that.
        let permit = match budget {
            Some(b) => b.acquire_many_owned(need).await.ok(),
            None => None,
        };
        self.dispatch(frame, None, permit);
    }

    /// Wait for a turn at sending bulk data toward `dst` ([`Turn`]); turns
    /// are granted in the order asked. `None` when no stream leads to `dst`.
    pub async fn take_turn(&self, dst: ContextId) -> Option<Turn> {
        let turn = {
            let inner = self.lock();
            inner
                .stream_toward(self.my_id, dst)
                .and_then(|sid| inner.streams.get(&sid))
                .map(|s| s.turn.clone())
        }?;
        Some(Turn {
            _guard: turn.lock_owned().await,
            sent: 0,
        })
    }

    /// Route a frame that arrived on stream `from` (or originated locally).
    pub fn route(&self, frame: Frame, from: Option<StreamId>) {
        self.dispatch(frame, from, None)
    }

    fn dispatch(&self, frame: Frame, from: Option<StreamId>, permit: Option<OwnedSemaphorePermit>) {
        let mut permit = permit;
        let mut pending = vec![(frame, from)];
        while let Some((frame, from)) = pending.pop() {
            let mut inner = self.lock();
            let h = frame.header;
            trace!(
                "frame {}->{} handle {} ({} bytes, auth {}, reply_to {})",
                h.src,
                h.dst,
                h.handle,
                frame.payload.len(),
                h.auth,
                h.reply_to
            );
            if let Some(sid) = from {
                let expected = inner.stream_toward(self.my_id, h.auth);
                if expected != Some(sid) {
                    let name = inner
                        .streams
                        .get(&sid)
                        .map(|s| s.name.as_str())
                        .unwrap_or("?");
                    warn!(
                        "dropped a frame from {name} claiming authority of context {} (src {}, handle {}): not reachable through that stream",
                        h.auth, h.src, h.handle
                    );
                    continue;
                }
            }
            let undeliverable = if h.dst == self.my_id {
                match (h.handle, from) {
                    (handle::ADD_ROUTE | handle::DEL_ROUTE, Some(sid)) => {
                        pending.extend(self.on_route_update(&mut inner, sid, &frame));
                        None
                    }
                    _ => match inner.handlers.get(&h.handle) {
                        Some(tx) => tx.send(frame.clone()).err().map(|_| "handle closed"),
                        None => Some("invalid handle"),
                    },
                }
            } else if let Some(sid) = inner.routes.get(&h.dst).copied() {
                inner.send_on(sid, frame.clone(), permit.take())
            } else if let Some(parent) = inner.parent.filter(|p| Some(*p) != from) {
                inner.send_on(parent, frame.clone(), permit.take())
            } else {
                Some("no route")
            };
            if let Some(why) = undeliverable {
                let reason = format!(
                    "{why}: context {} handle {} (seen by context {})",
                    h.dst, h.handle, self.my_id
                );
                debug!("undeliverable frame from {}: {reason}", h.src);
                if !frame.is_dead() && h.reply_to != 0 {
                    pending.push((Frame::dead(self.my_id, h.src, h.reply_to, &reason), None));
                }
            }
        }
    }

    fn on_route_update(
        &self,
        inner: &mut Inner,
        sid: StreamId,
        frame: &Frame,
    ) -> Vec<(Frame, Option<StreamId>)> {
        let Some(entry) = inner.streams.get(&sid) else {
            return vec![];
        };
        if inner.parent == Some(sid) || frame.header.src != entry.remote_id {
            warn!(
                "refused a route update from {}: not an immediate child",
                entry.name
            );
            return vec![];
        }
        let update: RouteUpdate = match frame.decode_cbor("route update") {
            Ok(u) => u,
            Err(e) => {
                warn!("{} sent {e}", entry.name);
                return vec![];
            }
        };
        let ctx = update.context;
        if frame.header.handle == handle::ADD_ROUTE {
            if ctx == self.my_id
                || self.parent_ids.contains(&ctx)
                || inner.routes.get(&ctx).is_some_and(|s| *s != sid)
            {
                warn!(
                    "refused ADD_ROUTE for context {ctx} from {}: already routed",
                    entry.name
                );
                return vec![];
            }
            inner.routes.insert(ctx, sid);
            if let Some(e) = inner.streams.get_mut(&sid) {
                e.routed.insert(ctx);
            }
        } else {
            if inner.routes.get(&ctx) != Some(&sid) {
                return vec![];
            }
            inner.routes.remove(&ctx);
            if let Some(e) = inner.streams.get_mut(&sid) {
                e.routed.remove(&ctx);
            }
            inner.emit(RouterEvent::ContextLost {
                context: ctx,
                reason: update.reason.clone(),
            });
        }
        self.propagate_up(inner, frame.header.handle, update)
    }

    fn propagate_up(
        &self,
        inner: &Inner,
        which: Handle,
        update: RouteUpdate,
    ) -> Vec<(Frame, Option<StreamId>)> {
        match (inner.parent, self.parent_ids.first()) {
            (Some(_), Some(&parent_id)) => {
                vec![(Frame::cbor(self.header(parent_id, which), &update), None)]
            }
            _ => vec![],
        }
    }

    /// Remove a stream (it closed or misbehaved) and report what it took with it.
    pub fn remove_stream(&self, sid: StreamId, reason: &str) {
        let mut pending = Vec::new();
        {
            let mut inner = self.lock();
            let Some(entry) = inner.streams.remove(&sid) else {
                return;
            };
            if let Some(reader) = &entry.reader {
                reader.abort();
            }
            entry.budget.close();
            debug!(
                "stream {} (context {}) removed: {reason}",
                entry.name, entry.remote_id
            );
            if inner.parent == Some(sid) {
                inner.parent = None;
                inner.emit(RouterEvent::ParentLost {
                    reason: reason.to_string(),
                });
            }
            for ctx in entry.routed {
                if inner.routes.get(&ctx) == Some(&sid) {
                    inner.routes.remove(&ctx);
                }
                inner.emit(RouterEvent::ContextLost {
                    context: ctx,
                    reason: reason.to_string(),
                });
                pending.extend(self.propagate_up(
                    &inner,
                    handle::DEL_ROUTE,
                    RouteUpdate {
                        context: ctx,
                        reason: reason.to_string(),
                    },
                ));
            }
        }
        for (frame, from) in pending {
            self.route(frame, from);
        }
    }

    /// Drop every stream, e.g. at shutdown: writers drain what is queued, then close.
    pub fn close_all(&self) {
        let sids: Vec<StreamId> = self.lock().streams.keys().copied().collect();
        for sid in sids {
            self.remove_stream(sid, "router closed");
        }
    }
}

impl Inner {
    fn stream_toward(&self, my_id: ContextId, ctx: ContextId) -> Option<StreamId> {
        if ctx == my_id {
            return None;
        }
        self.routes.get(&ctx).copied().or(self.parent)
    }

    fn send_on(
        &self,
        sid: StreamId,
        frame: Frame,
        budget: Option<OwnedSemaphorePermit>,
    ) -> Option<&'static str> {
        let sent = match self.streams.get(&sid).map(|s| &s.outlet) {
            Some(Outlet::Writer(tx)) => tx
                .send(Queued {
                    frame,
                    _budget: budget,
                })
                .is_ok(),
            Some(Outlet::Channel(tx)) => tx.send(frame).is_ok(),
            None => false,
        };
        if sent { None } else { Some("stream closed") }
    }

    fn emit(&mut self, event: RouterEvent) {
        self.listeners.retain(|l| l.send(event.clone()).is_ok());
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
            Ok(Some(frame)) => router.route(frame, Some(sid)),
            Ok(None) => break format!("{name}: connection closed"),
            // A reset is how a peer that was killed or torn down goes away:
            // the loss is reported through the router; not worth a warning.
            Err(crate::connection::ReadError::Io(e)) => {
                debug!("{name}: {e}; closing that stream");
                break format!("{name}: {e}");
            }
            Err(e) => {
                warn!("{name}: {e}; closing that stream");
                break format!("{name}: {e}");
            }
        }
    };
    router.remove_stream(sid, &reason);
}

async fn write_loop<W: AsyncWrite + Unpin>(
    router: Arc<Router>,
    sid: StreamId,
    name: String,
    mut writer: FrameWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
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
            router.remove_stream(sid, &format!("{name}: write failed: {e}"));
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::handle;
    use bytes::Bytes;

    fn data(dst: ContextId, src: ContextId, auth: ContextId, h: Handle, reply_to: Handle) -> Frame {
        Frame::data(
            Header {
                dst,
                src,
                auth,
                handle: h,
                reply_to,
            },
            Bytes::from_static(b"x"),
        )
    }

    #[tokio::test]
    async fn routes_down_up_and_locally() {
        let r = Router::new(1, vec![0], 1 << 20);
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let (ctx_tx, mut crx) = mpsc::unbounded_channel();
        let parent = r.add_stream("parent", 0, StreamRole::Parent, ptx);
        let child = r.add_stream("child", 2, StreamRole::Child, ctx_tx);
        let mut local = r.register_handler(500);

        r.route(data(1, 0, 0, 500, 0), Some(parent));
        assert_eq!(local.try_recv().unwrap().header.handle, 500);
        r.route(data(2, 0, 0, 7, 0), Some(parent));
        assert_eq!(crx.try_recv().unwrap().header.dst, 2);
        r.route(data(0, 2, 2, 7, 0), Some(child));
        assert_eq!(prx.try_recv().unwrap().header.dst, 0);
        // Unknown handle: dead reply to the sender's reply_to.
        r.route(data(1, 2, 2, 4242, 1234), Some(child));
        let dead = crx.try_recv().unwrap();
        assert!(dead.is_dead());
        assert_eq!(dead.header.handle, 1234);
        assert!(dead.dead_reason().contains("invalid handle"));
    }

    #[tokio::test]
    async fn forged_authority_is_dropped() {
        let r = Router::new(1, vec![0], 1 << 20);
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let (ctx_tx, _crx) = mpsc::unbounded_channel();
        r.add_stream("parent", 0, StreamRole::Parent, ptx);
        let child = r.add_stream("child", 2, StreamRole::Child, ctx_tx);
        let announced = prx.try_recv().unwrap();
        assert_eq!(announced.header.handle, handle::ADD_ROUTE);
        let mut spawn = r.register_handler(handle::SPAWN);
        // The child claims the host's authority: dropped.
        r.route(data(1, 0, 0, handle::SPAWN, 0), Some(child));
        assert!(spawn.try_recv().is_err());
        r.route(data(0, 2, 0, 9, 0), Some(child));
        assert!(prx.try_recv().is_err());
    }

    #[tokio::test]
    async fn add_route_propagates_and_loss_is_reported() {
        let r = Router::new(1, vec![0], 1 << 20);
        let mut events = r.subscribe();
        let (ptx, mut prx) = mpsc::unbounded_channel();
        let (ctx_tx, mut crx) = mpsc::unbounded_channel();
        r.add_stream("parent", 0, StreamRole::Parent, ptx);
        let child = r.add_stream("child", 2, StreamRole::Child, ctx_tx);
        let announced = prx.try_recv().unwrap();
        assert_eq!(
            announced
                .decode_cbor::<RouteUpdate>("route")
                .unwrap()
                .context,
            2
        );
        let add = Frame::cbor(
            Header {
                dst: 1,
                src: 2,
                auth: 2,
                handle: handle::ADD_ROUTE,
                reply_to: 0,
            },
            &RouteUpdate {
                context: 3,
                reason: String::new(),
            },
        );
        r.route(add, Some(child));
        let up = prx.try_recv().unwrap();
        assert_eq!(up.header.handle, handle::ADD_ROUTE);
        r.route(data(3, 0, 0, 7, 0), None);
        assert_eq!(crx.try_recv().unwrap().header.dst, 3);
        r.remove_stream(child, "child died");
        let mut lost: Vec<ContextId> = Vec::new();
        while let Ok(RouterEvent::ContextLost { context, .. }) = events.try_recv() {
            lost.push(context);
        }
        lost.sort();
        assert_eq!(lost, vec![2, 3]);
        let mut dels = 0;
        while let Ok(f) = prx.try_recv() {
            assert_eq!(f.header.handle, handle::DEL_ROUTE);
            dels += 1;
        }
        assert_eq!(dels, 2);
        // A message with reply_to toward a lost context gets a dead reply.
        let (h, mut rx) = r.alloc_handle();
        r.route(
            Frame::data(
                Header {
                    dst: 3,
                    src: 1,
                    auth: 1,
                    handle: 7,
                    reply_to: h,
                },
                Bytes::new(),
            ),
            None,
        );
        // With a parent the frame goes up instead; the host (no parent) answers dead.
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn host_without_route_answers_dead() {
        let r = Router::new(0, vec![], 1 << 20);
        let (h, mut rx) = r.alloc_handle();
        r.send(Frame::data(
            Header {
                dst: 5,
                src: 0,
                auth: 0,
                handle: 7,
                reply_to: h,
            },
            Bytes::new(),
        ));
        let dead = rx.try_recv().unwrap();
        assert!(dead.is_dead());
        assert!(dead.dead_reason().contains("no route"));
    }

    /// Bulk senders wait once a stream's queue holds its budget; they go on
    /// as the writer drains it, and a stream's removal releases them.
    #[tokio::test]
    async fn paced_senders_wait_for_the_write_queue() {
        use crate::connection::FrameReader;
        use std::time::Duration;
        let r = Router::new(1, vec![0], 1 << 20);
        // Nobody reads the far end yet: the writer stalls after 4 KiB.
        let (near, far) = tokio::io::duplex(4096);
        let sid = r.attach_writer("child", 2, StreamRole::Child, FrameWriter::new(near));
        let chunk = STREAM_QUEUE_BUDGET / 4;
        let frame = move || {
            let mut f = data(2, 1, 1, handle::SESSION_STDIN, 0);
            f.payload = Bytes::from(vec![1u8; chunk]);
            f
        };
        for _ in 0..4 {
            tokio::time::timeout(Duration::from_secs(5), r.send_paced(frame()))
                .await
                .expect("within the budget a paced send does not wait");
        }
        let r2 = r.clone();
        let waiting = tokio::spawn(async move { r2.send_paced(frame()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a fifth quarter must wait");
        // Draining the stream lets it through.
        let mut reader = FrameReader::new(far, 1 << 20);
        for _ in 0..5 {
            let f = reader.read_frame().await.unwrap().unwrap();
            assert_eq!(f.payload.len(), chunk);
        }
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        // With the reader stalled again, removing the stream frees waiters.
        for _ in 0..4 {
            r.send_paced(frame()).await;
        }
        let r3 = r.clone();
        let blocked = tokio::spawn(async move { r3.send_paced(frame()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.remove_stream(sid, "test");
        tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .expect("removal releases paced senders")
            .unwrap();
    }

    /// Turns at a stream are exclusive, granted in order, and given back by
    /// dropping them; there is no turn toward a context nothing leads to.
    #[tokio::test]
    async fn turns_are_exclusive_and_in_order() {
        use std::time::Duration;
        let r = Router::new(1, vec![0], 1 << 20);
        let (tx, _rx) = mpsc::unbounded_channel();
        r.add_stream("child", 2, StreamRole::Child, tx);
        assert!(r.take_turn(9).await.is_none(), "no stream leads to 9");
        let mut first = r.take_turn(2).await.expect("a turn");
        assert!(first.spend(TURN_BYTES - 1));
        assert!(!first.spend(1), "a turn is worth TURN_BYTES");
        let (order_tx, mut order) = mpsc::unbounded_channel();
        for n in [1, 2] {
            let (r, order_tx) = (r.clone(), order_tx.clone());
            tokio::spawn(async move {
                let _turn = r.take_turn(2).await;
                order_tx.send(n).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            order.try_recv().is_err(),
            "nobody goes while the turn is held"
        );
        drop(first);
        assert_eq!(order.recv().await, Some(1));
        assert_eq!(order.recv().await, Some(2));
    }
}
