//! The routing table and its trust rules, as decisions without I/O.
//!
//! A router keeps one [`RouteTable`]: which stream leads to which context,
//! which contexts a stream may name, and what each stream or mailbox is
//! bound to. [`RouteTable::decide`] says where a frame goes, or why it is
//! refused; the router only carries the decision out. The rules, in the
//! order they are applied to a frame that arrived on stream `S`:
//!
//! 1. **Authority and source** (Mitogen's rule, both ids): the stream this
//!    router would use to reach the frame's `auth`, and the one it would use
//!    to reach its `src`, must both be `S`. A child can never speak as its
//!    parent, as a sibling, or as a context it was not given.
//! 2. **Bound mailboxes**: a reply handle bound to context `C` takes frames
//!    only from the stream that leads to `C` (a CONNECT's answer comes from
//!    the agent asked, or as a dead message from the path to it).
//! 3. **Route claims**: ADD_ROUTE for context `N` is accepted from `S` only
//!    while a CONNECT for `N` that this router sent (or passed on) down `S`
//!    is pending, and only from `S`'s own context. Nobody can claim an id it
//!    was not given, so no child can pre-claim the ids the host hands out
//!    next. DEL_ROUTE removes only a route through `S`.
//! 4. **No reflection**: a frame is never routed back to the stream it came
//!    from.
//! 5. **No child-to-child**: a frame from a child goes to this context or up
//!    to the parent. It goes down to another stream only where that stream
//!    is *bound* to a context reached through `S` (the host's session
//!    streams: a session's output comes from the agent that runs it, and
//!    from nobody else). A bound stream takes non-dead frames only with that
//!    context as `src`.
//!
//! Frames that originate in this context (`from` is `None`) are trusted.

use std::collections::{HashMap, HashSet};

use crate::frame::Header;
use crate::message::{ContextId, Handle, handle};

/// Identifies one attached stream inside a router.
pub type StreamId = u64;

/// CONNECTs passed down that may be pending at once; the oldest is
/// forgotten beyond this (a parent that sends more is not ours).
pub const PENDING_CONNECTS: usize = 4096;

/// Where a stream sits relative to this context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRole {
    Parent,
    Child,
}

/// What the table knows about one stream.
#[derive(Clone, Debug)]
pub struct Link {
    pub role: StreamRole,
    /// The context at the other end.
    pub remote_id: ContextId,
    /// Contexts reached through this stream (its own id included for children).
    pub routed: HashSet<ContextId>,
    /// For a stream that serves one session here: the context whose frames
    /// it takes (see rule 5). `None` for agents' streams.
    pub bound: Option<ContextId>,
    /// A session stream takes frames from other streams only once bound.
    pub needs_binding: bool,
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// To this context's mailbox for the frame's handle.
    Local,
    /// An ADD_ROUTE or DEL_ROUTE from a child, for [`RouteTable::route_update`].
    RouteUpdate,
    /// Down or up this stream.
    Forward(StreamId),
    /// Nowhere: the sender should hear why (a dead message, if it asked).
    Undeliverable(&'static str),
    /// Dropped, and logged: the sender broke a trust rule.
    Refused(Refusal),
}

/// Which rule a frame broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("claiming authority of context {0}: not reachable through that stream")]
    Authority(ContextId),
    #[error("claiming to come from context {0}: not reachable through that stream")]
    Source(ContextId),
    #[error("answering on handle {0}, which waits for another context")]
    BoundHandle(Handle),
    #[error("addressed back to the stream it came from (context {0})")]
    Reflected(ContextId),
    #[error("addressed to context {0}, which a child may not reach")]
    Sibling(ContextId),
}

/// Why a route update was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    #[error("not an immediate child")]
    NotAChild,
    #[error("context {0} is this context or an ancestor")]
    Ancestor(ContextId),
    #[error("context {0} is already routed")]
    AlreadyRouted(ContextId),
    #[error("context {0} was not asked for through that stream")]
    NotAsked(ContextId),
    #[error("context {0} is not routed through that stream")]
    NotRouted(ContextId),
}

/// A route update the table accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    Added(ContextId),
    Removed(ContextId),
}

/// Routes, streams and bindings of one context.
#[derive(Debug)]
pub struct RouteTable {
    my_id: ContextId,
    parent_ids: Vec<ContextId>,
    links: HashMap<StreamId, Link>,
    routes: HashMap<ContextId, StreamId>,
    parent: Option<StreamId>,
    /// CONNECTs passed down: the new context's id, the stream it went down,
    /// and the order they were sent in (for [`PENDING_CONNECTS`]).
    pending: HashMap<ContextId, (StreamId, u64)>,
    pending_seq: u64,
    /// Reply handles that take frames only from the stream toward a context.
    bound_handles: HashMap<Handle, ContextId>,
}

impl RouteTable {
    pub fn new(my_id: ContextId, parent_ids: Vec<ContextId>) -> RouteTable {
        RouteTable {
            my_id,
            parent_ids,
            links: HashMap::new(),
            routes: HashMap::new(),
            parent: None,
            pending: HashMap::new(),
            pending_seq: 0,
            bound_handles: HashMap::new(),
        }
    }

    pub fn my_id(&self) -> ContextId {
        self.my_id
    }

    pub fn parent_ids(&self) -> &[ContextId] {
        &self.parent_ids
    }

    pub fn parent(&self) -> Option<StreamId> {
        self.parent
    }

    pub fn link(&self, sid: StreamId) -> Option<&Link> {
        self.links.get(&sid)
    }

    pub fn has_route(&self, ctx: ContextId) -> bool {
        self.routes.contains_key(&ctx)
    }

    /// Add a stream. A child's own context becomes routable through it at
    /// once (we started it, or it serves a session of ours). A session
    /// stream (`needs_binding`) takes frames from other streams only once
    /// [`RouteTable::bind`] names whose.
    pub fn add(
        &mut self,
        sid: StreamId,
        role: StreamRole,
        remote_id: ContextId,
        needs_binding: bool,
    ) {
        let mut routed = HashSet::new();
        match role {
            StreamRole::Parent => self.parent = Some(sid),
            StreamRole::Child => {
                self.routes.insert(remote_id, sid);
                routed.insert(remote_id);
            }
        }
        self.links.insert(
            sid,
            Link {
                role,
                remote_id,
                routed,
                bound: None,
                needs_binding,
            },
        );
    }

    /// Stream `sid` takes frames from other streams only from the one that
    /// leads to `peer`, with `peer` as their source (rule 5).
    pub fn bind(&mut self, sid: StreamId, peer: ContextId) {
        if let Some(link) = self.links.get_mut(&sid) {
            link.bound = Some(peer);
        }
    }

    /// Mailbox `handle` takes frames only from the stream toward `peer`.
    pub fn bind_handle(&mut self, handle: Handle, peer: ContextId) {
        self.bound_handles.insert(handle, peer);
    }

    pub fn unbind_handle(&mut self, handle: Handle) {
        self.bound_handles.remove(&handle);
    }

    /// Remove a stream; returns its link (with the contexts it took along).
    pub fn remove(&mut self, sid: StreamId) -> Option<Link> {
        let link = self.links.remove(&sid)?;
        if self.parent == Some(sid) {
            self.parent = None;
        }
        for ctx in &link.routed {
            if self.routes.get(ctx) == Some(&sid) {
                self.routes.remove(ctx);
            }
        }
        self.pending.retain(|_, (s, _)| *s != sid);
        Some(link)
    }

    /// The stream this context uses to reach `ctx`: its route, else the parent.
    pub fn toward(&self, ctx: ContextId) -> Option<StreamId> {
        if ctx == self.my_id {
            return None;
        }
        self.routes.get(&ctx).copied().or(self.parent)
    }

    /// A CONNECT asking for context `new_id` went down `sid`: a route to it
    /// may now be claimed through that stream (rule 3).
    pub fn expect_route(&mut self, new_id: ContextId, sid: StreamId) {
        if self.pending.len() >= PENDING_CONNECTS
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(c, _)| *c)
        {
            self.pending.remove(&oldest);
        }
        self.pending_seq += 1;
        self.pending.insert(new_id, (sid, self.pending_seq));
    }

    /// Where a frame with header `h`, arriving on `from` (`None`: from this
    /// context), goes.
    pub fn decide(&self, h: &Header, from: Option<StreamId>) -> Decision {
        if let Some(sid) = from {
            if self.toward(h.auth) != Some(sid) {
                return Decision::Refused(Refusal::Authority(h.auth));
            }
            if self.toward(h.src) != Some(sid) {
                return Decision::Refused(Refusal::Source(h.src));
            }
        }
        if h.dst == self.my_id {
            return match (h.handle, from) {
                (handle::ADD_ROUTE | handle::DEL_ROUTE, Some(_)) => Decision::RouteUpdate,
                (_, Some(sid)) => match self.bound_handles.get(&h.handle) {
                    Some(peer) if self.toward(*peer) != Some(sid) => {
                        Decision::Refused(Refusal::BoundHandle(h.handle))
                    }
                    _ => Decision::Local,
                },
                (_, None) => Decision::Local,
            };
        }
        let to = match self.routes.get(&h.dst) {
            Some(sid) => *sid,
            None => match self.parent {
                Some(p) if Some(p) != from => p,
                Some(_) => return Decision::Undeliverable("no route"),
                None => return Decision::Undeliverable("no route"),
            },
        };
        let Some(sid) = from else {
            return Decision::Forward(to);
        };
        if to == sid {
            return Decision::Refused(Refusal::Reflected(h.dst));
        }
        let Some(link) = self.links.get(&to) else {
            return Decision::Undeliverable("stream closed");
        };
        let from_child = self.parent != Some(sid);
        let dead = h.reply_to == handle::IS_DEAD;
        match link.bound {
            // A session's stream: only its agent's frames, through the
            // stream that leads to that agent.
            Some(peer) if self.toward(peer) == Some(sid) && (h.src == peer || dead) => {
                Decision::Forward(to)
            }
            Some(_) => Decision::Refused(Refusal::Sibling(h.dst)),
            None if link.needs_binding => Decision::Refused(Refusal::Sibling(h.dst)),
            None if from_child && link.role == StreamRole::Child => {
                Decision::Refused(Refusal::Sibling(h.dst))
            }
            None => Decision::Forward(to),
        }
    }

    /// Apply an ADD_ROUTE (`add`) or DEL_ROUTE for `ctx` that arrived on `sid`
    /// from context `src` (rule 3).
    pub fn route_update(
        &mut self,
        sid: StreamId,
        src: ContextId,
        ctx: ContextId,
        add: bool,
    ) -> Result<Accepted, ClaimRefused> {
        let link = self.links.get(&sid).ok_or(ClaimRefused::NotAChild)?;
        if link.role != StreamRole::Child || link.remote_id != src || link.needs_binding {
            return Err(ClaimRefused::NotAChild);
        }
        if !add {
            if self.routes.get(&ctx) != Some(&sid) {
                return Err(ClaimRefused::NotRouted(ctx));
            }
            self.routes.remove(&ctx);
            if let Some(link) = self.links.get_mut(&sid) {
                link.routed.remove(&ctx);
            }
            return Ok(Accepted::Removed(ctx));
        }
        if ctx == self.my_id || self.parent_ids.contains(&ctx) {
            return Err(ClaimRefused::Ancestor(ctx));
        }
        if self.routes.contains_key(&ctx) {
            return Err(ClaimRefused::AlreadyRouted(ctx));
        }
        match self.pending.get(&ctx) {
            Some((s, _)) if *s == sid => {}
            _ => return Err(ClaimRefused::NotAsked(ctx)),
        }
        self.pending.remove(&ctx);
        self.routes.insert(ctx, sid);
        if let Some(link) = self.links.get_mut(&sid) {
            link.routed.insert(ctx);
        }
        Ok(Accepted::Added(ctx))
    }
}

#[cfg(test)]
mod tests;
