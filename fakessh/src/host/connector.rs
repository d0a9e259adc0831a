//! Which chain serves a hostname, and the contexts established for chains.
//!
//! Contexts are created on first use and shared: every session for the same
//! chain (and every chain sharing a prefix) reuses the same agents.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use router_core::Router;
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Frame};
use router_core::message::{
    AgentConfig, ConnectRequest, ContextId, HOST_ID, HopKind, SessionRequest, handle,
};
use router_core::router::StreamRole;
use tokio::process::Child;
use tokio::sync::{Mutex, OnceCell};
use tracing::info;

use crate::chain::{Chain, HopSpec};
use crate::hop;

/// The user's routing table: `--host` mappings, then `--to`, then ssh:NAME.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub default: Option<Chain>,
    pub hosts: Vec<(String, Chain)>,
}

impl Routing {
    /// The chain that serves a session request.
    pub fn chain_for(&self, req: &SessionRequest) -> Chain {
        if let Some((_, chain)) = self.hosts.iter().find(|(name, _)| *name == req.host) {
            return chain.clone();
        }
        if let Some(chain) = &self.default {
            return chain.clone();
        }
        Chain {
            hops: vec![HopSpec::Ssh {
                user: req.user.clone(),
                host: req.host.clone(),
                port: req.port,
            }],
        }
    }
}

type ContextCell = Arc<OnceCell<Result<ContextId, String>>>;

/// Establishes chains into contexts, each once.
pub struct Connector {
    router: Arc<Router>,
    pub routing: Routing,
    log_level: u8,
    contexts: std::sync::Mutex<HashMap<Chain, ContextCell>>,
    next_id: AtomicU32,
    /// Agents the host started itself; kept so they are reaped.
    children: Mutex<Vec<Child>>,
}

impl Connector {
    pub fn new(router: Arc<Router>, routing: Routing, log_level: u8) -> Arc<Connector> {
        Arc::new(Connector {
            router,
            routing,
            log_level,
            contexts: std::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            children: Mutex::new(Vec::new()),
        })
    }

    /// The context at the end of `chain`, connecting it on first use.
    pub async fn connect(self: &Arc<Self>, chain: &Chain) -> Result<ContextId, String> {
        let cell = {
            let mut contexts = self.contexts.lock().unwrap_or_else(|p| p.into_inner());
            contexts.entry(chain.clone()).or_default().clone()
        };
        cell.get_or_init(|| self.establish(chain.clone()))
            .await
            .clone()
    }

    /// Forget a lost context so the next session reconnects it.
    pub fn forget(&self, context: ContextId) {
        let mut contexts = self.contexts.lock().unwrap_or_else(|p| p.into_inner());
        contexts.retain(|_, cell| cell.get() != Some(&Ok(context)));
    }

    fn establish(
        self: &Arc<Self>,
        chain: Chain,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<ContextId, String>> + Send + '_>> {
        Box::pin(async move {
            let n = chain.hops.len();
            let parent = if n > 1 {
                Some(self.connect(&chain.prefix(n - 1)).await?)
            } else {
                None
            };
            let name = chain.to_string();
            let hop = &chain.hops[n - 1];
            let kind = match hop {
                HopSpec::Local => HopKind::Local,
                HopSpec::Ssh { .. } => {
                    return Err(format!(
                        "{hop}: ssh hops are not available in this build yet; use --to local (or a chain of local hops)"
                    ));
                }
                HopSpec::Sudo { .. } | HopSpec::Su { .. } | HopSpec::Doas { .. } => {
                    return Err(format!(
                        "{hop} on {name}: privilege hops are not available in this build yet"
                    ));
                }
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            match parent {
                None => self.start_here(id, &name).await?,
                Some(parent) => self.start_via(parent, id, &name, kind).await?,
            }
            info!("{name}: connected as context {id}");
            Ok(id)
        })
    }

    /// First hop: the host starts the agent itself.
    async fn start_here(&self, id: ContextId, name: &str) -> Result<(), String> {
        let started = hop::start_local(AgentConfig {
            context_id: id,
            parent_ids: vec![HOST_ID],
            max_payload: DEFAULT_MAX_PAYLOAD,
            log_level: self.log_level,
            name: name.to_string(),
        })
        .await?;
        self.router
            .attach(name, id, StreamRole::Child, started.reader, started.writer);
        self.children.lock().await.push(started.child);
        Ok(())
    }

    /// Later hops: ask the previous hop's agent to start it.
    async fn start_via(
        &self,
        parent: ContextId,
        id: ContextId,
        name: &str,
        hop: HopKind,
    ) -> Result<(), String> {
        let (reply, mut rx) = self.router.alloc_handle();
        let mut header = self.router.header(parent, handle::CONNECT);
        header.reply_to = reply;
        self.router.send(Frame::cbor(
            header,
            &ConnectRequest {
                new_id: id,
                hop,
                name: name.to_string(),
                log_level: self.log_level,
            },
        ));
        let answer =
            tokio::time::timeout(hop::CONNECT_TIMEOUT + Duration::from_secs(5), rx.recv()).await;
        self.router.remove_handler(reply);
        let frame = answer
            .map_err(|_| format!("{name}: no answer from the previous hop"))?
            .ok_or_else(|| format!("{name}: connection attempt abandoned"))?;
        if frame.is_dead() {
            return Err(format!("{name}: {}", frame.dead_reason()));
        }
        frame
            .decode_cbor::<Result<(), String>>("connect reply")
            .map_err(|e| format!("{name}: {e}"))?
    }

    /// Ask every agent we started to exit, and give them a moment to do so.
    pub async fn shutdown(&self) {
        self.router.close_all();
        let mut children = self.children.lock().await;
        for child in children.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
    }
}
