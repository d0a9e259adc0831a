//! The router itself: routes, mailboxes and where each frame goes. The
//! decisions are [`RouteTable`]'s; this carries them out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tracing::{debug, trace, warn};

use super::stream::{Handed, Outlet, StreamEntry};
use super::turn::{STREAM_QUEUE_BUDGET, Turn};
use proto::frame::{Frame, Header};
use proto::message::{ContextId, Handle, RouteUpdate, handle};
use proto::route_table::{Accepted, Decision, RouteTable, StreamId, StreamRole};

/// Router events a subscriber may miss before it lags (and must then look
/// at [`Router::has_route`] instead).
const EVENT_QUEUE: usize = 256;

/// Frames that may wait in a reply handle's mailbox.
const REPLY_QUEUE: usize = 4;

/// Something the owner of a router must react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterEvent {
    /// A context below us is unreachable from now on.
    ContextLost { context: ContextId, reason: String },
    /// The stream to our parent is gone: an agent must shut down.
    ParentLost { reason: String },
}

pub(super) struct Inner {
    pub(super) table: RouteTable,
    pub(super) streams: HashMap<StreamId, StreamEntry>,
    handlers: HashMap<Handle, mpsc::Sender<Frame>>,
    next_stream: StreamId,
    next_handle: Handle,
}

/// One context's router. Cheap to share: wrap in `Arc`.
pub struct Router {
    my_id: ContextId,
    parent_ids: Vec<ContextId>,
    max_payload: u32,
    events: broadcast::Sender<RouterEvent>,
    inner: Mutex<Inner>,
}

/// Where the router decided a frame goes.
enum Destination {
    Out(Outlet),
    Local(mpsc::Sender<Frame>),
    /// Handled inside the router; these frames follow.
    Handled(Vec<Frame>),
    /// The stream it came from broke a trust rule: cut it off, for this reason.
    CutOff(StreamId, String),
    Undeliverable(&'static str),
}

/// The one field of a CONNECT a router passing it down needs (rule 3 of
/// [`super::table`]).
#[derive(Deserialize)]
struct ConnectFor {
    new_id: ContextId,
}

impl Router {
    pub fn new(my_id: ContextId, parent_ids: Vec<ContextId>, max_payload: u32) -> Arc<Router> {
        Arc::new(Router {
            my_id,
            parent_ids: parent_ids.clone(),
            max_payload,
            events: broadcast::channel(EVENT_QUEUE).0,
            inner: Mutex::new(Inner {
                table: RouteTable::new(my_id, parent_ids),
                streams: HashMap::new(),
                handlers: HashMap::new(),
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
    /// Let `bytes` more wait in session stream `sid`'s inbox: its client
    /// end grew an output's window by that much, before telling the agent.
    pub fn widen_session_inbox(&self, sid: StreamId, bytes: usize) {
        if let Some(entry) = self.lock().streams.get(&sid) {
            entry.outlet.widen(bytes);
        }
    }

    pub fn is_ancestor_or_self(&self, id: ContextId) -> bool {
        id == self.my_id || self.parent_ids.contains(&id)
    }

    /// A header from this context, with our own authority.
    pub fn header(&self, dst: ContextId, handle: Handle) -> Header {
        proto::session::header(dst, self.my_id, handle)
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receive router events (lost contexts, lost parent). A subscriber
    /// that falls behind gets `Lagged` and should check [`Router::has_route`].
    pub fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.events.subscribe()
    }

    /// Whether a stream below us leads to `ctx`.
    pub fn has_route(&self, ctx: ContextId) -> bool {
        self.lock().table.has_route(ctx)
    }

    /// Deliver frames for all of `handles` to one receiver, in arrival
    /// order, at most `capacity` waiting. Use one inbox where order across
    /// handles matters (a session's spawn must be seen before its stdin).
    pub fn register_inbox(&self, handles: &[Handle], capacity: usize) -> mpsc::Receiver<Frame> {
        let (tx, rx) = mpsc::channel(capacity);
        let mut inner = self.lock();
        for h in handles {
            inner.handlers.insert(*h, tx.clone());
        }
        rx
    }

    /// A fresh handle for the reply of context `from`, and its receiver:
    /// frames from any other stream than the one leading to `from` are
    /// refused, so nobody else can answer in its place.
    pub fn alloc_reply_handle(&self, from: ContextId) -> (Handle, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let mut inner = self.lock();
        let h = inner.next_handle;
        inner.next_handle = inner.next_handle.wrapping_add(1).max(handle::FIRST_DYNAMIC);
        inner.handlers.insert(h, tx);
        inner.table.bind_handle(h, from);
        (h, rx)
    }

    pub fn remove_handler(&self, handle: Handle) {
        let mut inner = self.lock();
        inner.handlers.remove(&handle);
        inner.table.unbind_handle(handle);
    }

    /// Session stream `sid` (see [`Router::add_session_stream`]) takes
    /// frames from context `peer`, which runs the session, and from nobody
    /// else. Call it before asking `peer` to start the session.
    pub fn bind_session(&self, sid: StreamId, peer: ContextId) {
        self.lock().table.bind(sid, peer);
    }

    pub(super) async fn register_stream(
        &self,
        name: &str,
        remote_id: ContextId,
        role: StreamRole,
        needs_binding: bool,
        outlet: Outlet,
    ) -> StreamId {
        let (sid, announce) = {
            let mut inner = self.lock();
            let sid = inner.next_stream;
            inner.next_stream += 1;
            inner.table.add(sid, role, remote_id, needs_binding);
            inner.streams.insert(
                sid,
                StreamEntry {
                    name: name.to_string(),
                    remote_id,
                    outlet,
                    budget: Arc::new(Semaphore::new(STREAM_QUEUE_BUDGET)),
                    turn: Arc::new(tokio::sync::Mutex::new(())),
                    reader: None,
                    staged: None,
                },
            );
            // A new child is a new route: tell our parent, so frames for it
            // find their way down from the host (Mitogen's ADD_ROUTE).
            // Session streams are this context's own business.
            let announce = match role {
                StreamRole::Child if !needs_binding => {
                    self.route_update_up(&inner, handle::ADD_ROUTE, remote_id, "")
                }
                _ => None,
            };
            (sid, announce)
        };
        if let Some(frame) = announce {
            self.route(frame, None).await;
        }
        sid
    }

    fn stream_name(&self, sid: StreamId) -> String {
        self.lock()
            .streams
            .get(&sid)
            .map_or_else(|| format!("stream {sid}"), |s| s.name.clone())
    }

    pub(super) fn set_reader(&self, sid: StreamId, reader: tokio::task::AbortHandle) {
        if let Some(entry) = self.lock().streams.get_mut(&sid) {
            entry.reader = Some(reader);
        }
    }

    /// Send a frame originating in this context, waiting for queue room.
    pub async fn send(&self, frame: Frame) {
        self.dispatch(frame, None, None).await
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
                .table
                .toward(frame.header.dst)
                .and_then(|sid| inner.streams.get(&sid))
                .map(|s| s.budget.clone())
        };
        // A closed budget means the stream went: routing reports that.
        let permit = match budget {
            Some(b) => b.acquire_many_owned(need).await.ok(),
            None => None,
        };
        self.dispatch(frame, None, permit).await;
    }

    /// Wait for a turn at sending bulk data toward `dst` ([`Turn`]); turns
    /// are granted in the order asked. `None` when no stream leads to `dst`.
    pub async fn take_turn(&self, dst: ContextId) -> Option<Turn> {
        let turn = {
            let inner = self.lock();
            inner
                .table
                .toward(dst)
                .and_then(|sid| inner.streams.get(&sid))
                .map(|s| s.turn.clone())
        }?;
        Some(Turn::new(turn.lock_owned().await))
    }

    /// Route a frame that arrived on stream `from` (or originated locally).
    pub async fn route(&self, frame: Frame, from: Option<StreamId>) {
        self.dispatch(frame, from, None).await
    }

    async fn dispatch(
        &self,
        frame: Frame,
        from: Option<StreamId>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let mut permit = permit;
        let mut pending = vec![(frame, from)];
        while let Some((frame, from)) = pending.pop() {
            let h = frame.header;
            let dead = frame.is_dead();
            let undeliverable = match self.destination(&frame, from) {
                Destination::Out(outlet) => {
                    match outlet.send(frame, permit.take(), from.is_some()).await {
                        Handed::Queued => None,
                        Handed::Closed => Some("stream closed"),
                        Handed::OverBound(bound) => {
                            let sid = from.expect("only forwarded frames are refused");
                            let reason = format!(
                                "{}: cut off: it sent more to context {} than the {bound} bytes its credit allows in flight",
                                self.stream_name(sid),
                                h.dst
                            );
                            warn!("{reason}");
                            Box::pin(self.remove_stream(sid, &reason)).await;
                            None
                        }
                    }
                }
                Destination::Local(tx) => tx.send(frame).await.err().map(|_| "handle closed"),
                Destination::Handled(follow) => {
                    pending.extend(follow.into_iter().map(|f| (f, None)));
                    None
                }
                Destination::CutOff(sid, reason) => {
                    Box::pin(self.remove_stream(sid, &reason)).await;
                    None
                }
                Destination::Undeliverable(why) => Some(why),
            };
            if let Some(why) = undeliverable {
                let reason = format!(
                    "{why}: context {} handle {} (seen by context {})",
                    h.dst, h.handle, self.my_id
                );
                debug!("undeliverable frame from {}: {reason}", h.src);
                if !dead && h.reply_to != 0 {
                    pending.push((Frame::dead(self.my_id, h.src, h.reply_to, &reason), None));
                }
            }
        }
    }

    /// Decide, under the lock, where `frame` goes.
    fn destination(&self, frame: &Frame, from: Option<StreamId>) -> Destination {
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
        match inner.table.decide(&h, from) {
            Decision::Local => match inner.handlers.get(&h.handle) {
                Some(tx) => Destination::Local(tx.clone()),
                None => Destination::Undeliverable("invalid handle"),
            },
            Decision::RouteUpdate => match from {
                Some(sid) => self.on_route_update(&mut inner, sid, frame),
                None => Destination::Handled(Vec::new()),
            },
            Decision::Forward(sid) => {
                if h.handle == handle::CONNECT
                    && inner
                        .table
                        .link(sid)
                        .is_some_and(|l| l.role == StreamRole::Child)
                    && let Ok(connect) = frame.decode_cbor::<ConnectFor>("connect request")
                {
                    inner.table.expect_route(connect.new_id, sid);
                }
                match inner.streams.get(&sid) {
                    Some(entry) => Destination::Out(entry.outlet.clone()),
                    None => Destination::Undeliverable("stream closed"),
                }
            }
            Decision::Undeliverable(why) => Destination::Undeliverable(why),
            Decision::Refused(refusal) => {
                let sid = from.expect("only frames from a stream are refused");
                let name = inner.streams.get(&sid).map_or("?", |s| s.name.as_str());
                let reason = format!(
                    "{name}: cut off: it sent a frame (src {}, handle {}) {refusal}",
                    h.src, h.handle
                );
                warn!("{reason}");
                Destination::CutOff(sid, reason)
            }
        }
    }

    fn on_route_update(&self, inner: &mut Inner, sid: StreamId, frame: &Frame) -> Destination {
        let name = inner
            .streams
            .get(&sid)
            .map_or_else(|| "?".to_string(), |s| s.name.clone());
        let update: RouteUpdate = match frame.decode_cbor("route update") {
            Ok(u) => u,
            Err(e) => {
                let reason = format!("{name}: cut off: it sent a {e}");
                warn!("{reason}");
                return Destination::CutOff(sid, reason);
            }
        };
        let add = frame.header.handle == handle::ADD_ROUTE;
        match inner
            .table
            .route_update(sid, frame.header.src, update.context, add)
        {
            Ok(Accepted::Added(_)) => {}
            Ok(Accepted::Removed(ctx)) => self.emit(RouterEvent::ContextLost {
                context: ctx,
                reason: update.reason.clone(),
            }),
            // A route that already went (its stream closed first): no news.
            Err(e) if !add => {
                debug!("ignored DEL_ROUTE from {name}: {e}");
                return Destination::Handled(Vec::new());
            }
            Err(e) => {
                let reason = format!(
                    "{name}: cut off: it claimed a route to context {}: {e}",
                    update.context
                );
                warn!("{reason}");
                return Destination::CutOff(sid, reason);
            }
        }
        Destination::Handled(
            self.route_update_up(inner, frame.header.handle, update.context, &update.reason)
                .into_iter()
                .collect(),
        )
    }

    /// The ADD_ROUTE/DEL_ROUTE that tells our parent about `context`.
    fn route_update_up(
        &self,
        inner: &Inner,
        which: Handle,
        context: ContextId,
        reason: &str,
    ) -> Option<Frame> {
        inner.table.parent()?;
        let parent_id = *self.parent_ids.first()?;
        let update = RouteUpdate {
            context,
            reason: reason.to_string(),
        };
        Some(Frame::cbor(self.header(parent_id, which), &update))
    }

    fn emit(&self, event: RouterEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Remove a stream (it closed or misbehaved) and report what it took with it.
    pub async fn remove_stream(&self, sid: StreamId, reason: &str) {
        let mut upward = Vec::new();
        {
            let mut inner = self.lock();
            let Some(entry) = inner.streams.remove(&sid) else {
                return;
            };
            if let Some(reader) = &entry.reader {
                reader.abort();
            }
            entry.budget.close();
            entry.outlet.close();
            debug!(
                "stream {} (context {}) removed: {reason}",
                entry.name, entry.remote_id
            );
            let Some(link) = inner.table.remove(sid) else {
                return;
            };
            if link.role == StreamRole::Parent {
                self.emit(RouterEvent::ParentLost {
                    reason: reason.to_string(),
                });
            }
            for ctx in link.routed {
                self.emit(RouterEvent::ContextLost {
                    context: ctx,
                    reason: reason.to_string(),
                });
                if !link.needs_binding {
                    upward.extend(self.route_update_up(&inner, handle::DEL_ROUTE, ctx, reason));
                }
            }
        }
        for frame in upward {
            self.route(frame, None).await;
        }
    }

    /// Drop every stream, e.g. at shutdown: writers drain what is queued, then close.
    pub async fn close_all(&self) {
        let sids: Vec<StreamId> = self.lock().streams.keys().copied().collect();
        for sid in sids {
            self.remove_stream(sid, "router closed").await;
        }
    }
}

#[cfg(test)]
mod tests;
