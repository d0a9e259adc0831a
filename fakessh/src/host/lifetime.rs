//! How long contexts live: a context whose link died is forgotten at once
//! (its next session reconnects), one that stayed idle past a daemon's
//! idle timeout is ended, and `stop` ends them all, agents and commands.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use router::frame::Frame;
use router::message::handle;
use router::router::RouterEvent;
use tokio::sync::broadcast::error::RecvError;
use tracing::info;

use super::connector::Connector;

/// Forget every context the router reports lost, until the router goes.
pub async fn forget_lost(connector: std::sync::Weak<Connector>, router: Arc<router::Router>) {
    let mut events = router.subscribe();
    drop(router);
    loop {
        match events.recv().await {
            Ok(RouterEvent::ContextLost { context, reason }) => {
                let Some(connector) = connector.upgrade() else {
                    return;
                };
                info!("context {context} lost ({reason}); its next session reconnects");
                connector.forget(context);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// End the contexts nothing used for `idle`: the ones at the end of their
/// chains first (a context some longer chain goes through waits until
/// that one is gone).
pub async fn end_idle(connector: &Connector, idle: Duration) {
    let live: Vec<_> = connector.stats.snapshot();
    for (context, chain) in connector.stats.idle_contexts(idle) {
        let extended = live.iter().any(|other| {
            other.context != context
                && other
                    .chain
                    .strip_prefix(&chain.to_string())
                    .is_some_and(|rest| rest.starts_with(','))
        });
        if extended {
            continue;
        }
        info!("{chain}: idle for {}s, ending it", idle.as_secs());
        end(connector, context).await;
    }
}

/// End every context (the longest chains first), then the streams.
pub async fn end_all(connector: &Connector) {
    let mut live = connector.stats.snapshot();
    live.sort_by_key(|c| std::cmp::Reverse(c.chain.matches(',').count()));
    for context in &live {
        end(connector, context.context).await;
    }
    // Let the agents end their commands before their transports go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while live.iter().any(|c| connector.router.has_route(c.context))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    connector.shutdown().await;
}

/// Ask one context's agent to end (its commands with it), and forget it.
pub(super) async fn end(connector: &Connector, context: router::message::ContextId) {
    let router = &connector.router;
    router
        .send(Frame::data(
            router.header(context, handle::SHUTDOWN),
            Bytes::new(),
        ))
        .await;
    connector.forget(context);
}
