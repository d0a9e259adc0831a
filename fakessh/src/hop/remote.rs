//! Asking an agent to start a hop below itself (a `CONNECT` request), and
//! how an agent serves one.

use std::sync::Arc;
use std::time::Duration;

use router::Router;
use router::frame::Frame;
use router::message::{AgentConfig, ConnectFailure, ConnectRequest, ContextId, handle};
use router::router::StreamRole;
use tokio::process::Child;
use tracing::info;

use super::error::HopFailure;
use super::here;

/// How long the agent may take to start the hop (a sudo password prompt,
/// an upload on a slow link).
const REMOTE_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Ask `parent` to start `request.hop` as context `request.new_id`.
pub async fn start_via(
    router: &Router,
    parent: ContextId,
    request: &ConnectRequest,
) -> Result<(), HopFailure> {
    let (reply, mut rx) = router.alloc_reply_handle(parent);
    let mut header = router.header(parent, handle::CONNECT);
    header.reply_to = reply;
    router.send(Frame::cbor(header, request)).await;
    let answer = tokio::time::timeout(REMOTE_START_TIMEOUT, rx.recv()).await;
    router.remove_handler(reply);
    let frame = answer
        .map_err(|_| HopFailure::NoAnswer)?
        .ok_or(HopFailure::Abandoned)?;
    if frame.is_dead() {
        return Err(HopFailure::undeliverable(&frame.dead_reason()));
    }
    frame
        .decode_cbor::<Result<(), ConnectFailure>>("connect reply")?
        .map_err(HopFailure::from_wire)
}

/// In an agent: start `request.hop` below us and attach it as a child
/// stream (which announces the new route up to the host).
pub async fn serve(router: &Arc<Router>, request: ConnectRequest) -> Result<Child, HopFailure> {
    let mut parent_ids = vec![router.my_id()];
    parent_ids.extend_from_slice(router.parent_ids());
    let config = AgentConfig {
        context_id: request.new_id,
        parent_ids,
        max_payload: router.max_payload(),
        log_level: request.log_level,
        name: request.name.clone(),
    };
    let started = here::start(
        &request.hop,
        request.password.as_ref(),
        config,
        request.agent_dir.clone(),
    )
    .await?;
    let pid = started.hello.pid;
    router
        .attach(
            &request.name,
            request.new_id,
            StreamRole::Child,
            started.reader,
            started.writer,
        )
        .await;
    info!(
        "started {} as context {} (pid {pid})",
        request.name, request.new_id
    );
    started.process.ok_or(HopFailure::Abandoned)
}
