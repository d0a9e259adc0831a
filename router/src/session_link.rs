//! One session as the router sees it: this context's end and the other
//! one. Every driver of a session (the agent's command end and listeners,
//! the one client-end driver) sends through a [`SessionLink`], so a
//! session's frames are addressed one way everywhere: to the other end,
//! from this context, under this context's authority as `src` and `auth`
//! (the host's session streams are bound to the agent that runs the
//! command, and an agent takes a session's frames only under the session's
//! own authority: `proto::route_table`, `proto::agent_request`).

use std::sync::Arc;

use proto::frame::Frame;
use proto::message::ContextId;
use proto::session::{ToClient, ToCommand};

use crate::pump::BulkSender;
use crate::router::Router;

/// A session's two ends: `local`, the id this end speaks as (the session's
/// own id at the client end, the agent's at the command end), and `remote`.
#[derive(Clone)]
pub struct SessionLink {
    router: Arc<Router>,
    local: ContextId,
    remote: ContextId,
}

impl SessionLink {
    /// The command end's link, in the agent: it speaks as the agent.
    pub fn command_end(router: Arc<Router>, client: ContextId) -> SessionLink {
        let local = router.my_id();
        SessionLink {
            router,
            local,
            remote: client,
        }
    }

    /// The client end's link, in the host: it speaks as the session.
    pub fn client_end(router: Arc<Router>, session: ContextId, agent: ContextId) -> SessionLink {
        SessionLink {
            router,
            local: session,
            remote: agent,
        }
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn remote(&self) -> ContextId {
        self.remote
    }

    /// A message for the command end.
    pub fn command_frame(&self, msg: &ToCommand) -> Frame {
        msg.to_frame(self.remote, self.local)
    }

    /// A message for the client end.
    pub fn client_frame(&self, msg: &ToClient) -> Frame {
        msg.to_frame(self.remote, self.local)
    }

    /// Send a message to the command end.
    pub async fn to_command(&self, msg: &ToCommand) {
        self.router.send(self.command_frame(msg)).await;
    }

    /// Send a message to the client end.
    pub async fn to_client(&self, msg: &ToClient) {
        self.router.send(self.client_frame(msg)).await;
    }

    /// Send bulk data (stdin, or output) to the other end, taking turns.
    pub async fn send_bulk(&self, sender: &mut BulkSender, frame: Frame) {
        sender.send(&self.router, frame).await;
    }
}
