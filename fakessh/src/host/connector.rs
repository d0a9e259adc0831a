//! The contexts established for chains: each chain is connected once, on
//! first use, and shared by every session (and every longer chain) that
//! needs it. The connector only orchestrates; how each hop starts lives in
//! [`crate::hop`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use router::Router;
use router::frame::DEFAULT_MAX_PAYLOAD;
use router::hop::{Chain, Hop};
use router::lanes::Staged;
use router::message::{AgentConfig, ConnectRequest, ContextId, FIRST_SESSION_ID, HOST_ID, Secret};
use router::router::StreamRole;
use router::session::SessionRequest;
use tokio::process::Child;
use tokio::sync::{Mutex, OnceCell};
use tracing::info;

use super::client_options::{ClientOptions, session_asked};
use super::forward_policy::ForwardPolicy;
use super::routing::{ExpandError, Routing};
use super::stats::Stats;
use crate::hop::agents::Agents;
use crate::hop::bootstrap::Placement;
use crate::hop::error::{HopError, HopFailure};
use crate::hop::ssh::{self, Jumps, SshError, SshSettings, connect, direct};
use crate::hop::{here, remote, tunnel};
use ssh_config::{ConfigError, SessionAsked, SshConfig};

/// A chain's context, or why it could not be had (shared by every session
/// that asked for it).
pub type Connected = Result<ContextId, Arc<HopError>>;

/// Establishes chains into contexts, each once.
pub struct Connector {
    pub(super) router: Arc<Router>,
    pub routing: Routing,
    log_level: u8,
    contexts: std::sync::Mutex<HashMap<Chain, Arc<OnceCell<Connected>>>>,
    next_id: AtomicU32,
    next_session: AtomicU32,
    ssh: SshSettings,
    /// `--password-file`: answers sudo/su/doas prompts, never an sshd's.
    privilege_password: Option<Secret>,
    /// Agents the host started itself; kept so they are reaped.
    children: Mutex<Vec<Child>>,
    jumps: Jumps,
    /// The agents ssh hops can upload, and where they keep them.
    agents: Agents,
    placement: Placement,
    /// The client's ssh options for on-demand chains, from the session that
    /// first asked for each (later sessions reuse the connection as it is,
    /// as with OpenSSH's ControlMaster).
    client_options: std::sync::Mutex<HashMap<Chain, ClientOptions>>,
    /// A rule's `agent-dir`, for the chains (and their prefixes) it gave.
    agent_dirs: std::sync::Mutex<HashMap<Chain, String>>,
    /// Contexts and sessions, for `status`, the idle timeout and the end.
    pub stats: Arc<Stats>,
    /// At most this many agents are uploaded at once: 200 cold hosts must
    /// not each get a 200th of the link.
    upload_slots: Arc<tokio::sync::Semaphore>,
    /// Lanes beyond an ssh hop's first channel (`--lanes` less one).
    extra_lanes: u8,
    /// What sessions may forward (the agent across users, `-R` addresses).
    pub forwarding: ForwardPolicy,
}

/// How many agent uploads run at once.
const UPLOADS_AT_ONCE: usize = 8;

/// A hostname whose rule cannot give it a chain.
#[derive(Debug, thiserror::Error)]
#[error("{host}: {source} (rule: {rule})")]
pub struct RouteError {
    host: String,
    rule: String,
    source: ExpandError,
}

/// How the connector starts hops, from the command line and config file.
pub struct ConnectorOptions {
    pub log_level: u8,
    /// `--agent-dir`: the only place to keep the agent on the far side.
    pub agent_dir: Option<String>,
    /// `--lanes`: SSH channels toward an ssh hop's agent, the first included.
    pub lanes: u8,
    pub forwarding: ForwardPolicy,
}

impl Connector {
    pub fn new(
        router: Arc<Router>,
        routing: Routing,
        ssh: SshSettings,
        privilege_password: Option<Secret>,
        agents: Agents,
        options: ConnectorOptions,
    ) -> Arc<Connector> {
        let ConnectorOptions {
            log_level,
            agent_dir,
            lanes,
            forwarding,
        } = options;
        Arc::new(Connector {
            router,
            routing,
            log_level,
            contexts: Default::default(),
            next_id: AtomicU32::new(1),
            next_session: AtomicU32::new(FIRST_SESSION_ID),
            ssh,
            privilege_password,
            children: Mutex::new(Vec::new()),
            jumps: Jumps::default(),
            agents,
            placement: Placement {
                agent_dir,
                privileged: false,
                compress: true,
            },
            client_options: Default::default(),
            agent_dirs: Default::default(),
            stats: Default::default(),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
            extra_lanes: lanes.saturating_sub(1),
            forwarding,
        })
    }

    /// A fresh context id for a shim session or a tunnel.
    pub fn next_session_id(&self) -> ContextId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    fn next_context_id(&self) -> ContextId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The context at the end of `chain`, connecting it on first use.
    pub async fn connect(self: &Arc<Self>, chain: &Chain) -> Connected {
        let cell = {
            let mut contexts = self.contexts.lock().unwrap_or_else(|p| p.into_inner());
            contexts.entry(chain.clone()).or_default().clone()
        };
        cell.get_or_init(|| self.establish(chain.clone()))
            .await
            .clone()
    }

    /// The context for a session request: its chain, connected, configured
    /// by the client's ssh options if it is an on-demand chain and the
    /// first to ask for it.
    pub async fn connect_for(
        self: &Arc<Self>,
        request: &SessionRequest,
    ) -> Result<(Chain, Connected), RouteError> {
        let chain = self.chain_for(request)?;
        let connected = self.connect(&chain).await;
        Ok((chain, connected))
    }

    /// The chain a session request's destination is reached through,
    /// noted with the client's options if it is an on-demand chain and the
    /// first to ask for it; nothing is connected.
    // The same error `connect_for` returns (an async fn, which the lint
    // does not see).
    #[allow(clippy::result_large_err)]
    pub fn chain_for(&self, request: &SessionRequest) -> Result<Chain, RouteError> {
        let route = tokio::task::block_in_place(|| {
            self.routing.route(
                &request.host,
                request.user.as_deref(),
                request.port,
                |host| super::explain::defaults_from(&self.ssh.config, host),
            )
        });
        let chain = route.chain.map_err(|source| RouteError {
            host: request.host.clone(),
            rule: route.rule.map(|r| r.to_string()).unwrap_or_default(),
            source,
        })?;
        if let Some(dir) = route.rule.and_then(|r| r.agent_dir.as_ref()) {
            let mut dirs = self.agent_dirs.lock().unwrap_or_else(|p| p.into_inner());
            for len in 1..=chain.hops.len() {
                dirs.entry(chain.prefix(len)).or_insert_with(|| dir.clone());
            }
        }
        // A rule's chain takes none of the client's options, but is
        // configured for the first session that asked for it too.
        let on_demand = route.rule.is_none();
        self.client_options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(chain.clone())
            .or_insert_with(|| ClientOptions {
                options: match on_demand {
                    true => request.ssh_options.clone(),
                    false => Vec::new(),
                },
                config_file: request.ssh_config_file.clone().filter(|_| on_demand),
                session: Some(session_asked(&request.command)),
            });
        Ok(chain)
    }

    /// The context of `chain` if it is connected now (never connects).
    pub fn connected(&self, chain: &Chain) -> Option<ContextId> {
        let contexts = self.contexts.lock().unwrap_or_else(|p| p.into_inner());
        contexts
            .get(chain)
            .and_then(|cell| cell.get())
            .and_then(|connected| connected.as_ref().ok())
            .copied()
    }

    /// Where the agents of `chain` are kept: its rule's `agent-dir`, else
    /// `--agent-dir`, else the bootstrap's choice.
    fn agent_dir_for(&self, chain: &Chain) -> Option<String> {
        let dirs = self.agent_dirs.lock().unwrap_or_else(|p| p.into_inner());
        dirs.get(chain)
            .cloned()
            .or_else(|| self.placement.agent_dir.clone())
    }

    /// Forget a lost context so the next session reconnects it.
    pub fn forget(&self, context: ContextId) {
        let mut contexts = self.contexts.lock().unwrap_or_else(|p| p.into_inner());
        contexts.retain(|_, cell| !matches!(cell.get(), Some(Ok(c)) if *c == context));
        self.stats.forget(context);
    }

    fn establish(
        self: &Arc<Self>,
        chain: Chain,
    ) -> std::pin::Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
        Box::pin(async move {
            let Some((hop, before)) = chain.split_last() else {
                return Err(Arc::new(HopFailure::Abandoned.at("an empty chain")));
            };
            let parent = match &before {
                Some(before) => Some(self.connect(before).await?),
                None => None,
            };
            let name = chain.to_string();
            let id = match hop {
                Hop::Ssh { user, host, port } => {
                    let id = self.next_context_id();
                    self.start_ssh(parent, id, &chain, host, user.as_deref(), *port)
                        .await
                        .map_err(|f| f.at(&name))?;
                    id
                }
                Hop::Local => {
                    let id = self.next_context_id();
                    self.start_hop(parent, id, &chain, hop, None)
                        .await
                        .map_err(|f| f.at(&name))?;
                    id
                }
                Hop::Sudo { .. } | Hop::Su { .. } | Hop::Doas { .. } => {
                    // Name it the way the user thinks of it.
                    let place = before.map_or("the local host".to_string(), |b| b.to_string());
                    let label = format!("{hop} on {place}");
                    self.start_privileged(parent, &chain, hop, &label)
                        .await
                        .map_err(|f| f.at(label))?
                }
            };
            info!("{name}: connected as context {id}");
            self.stats.connected(id, &chain);
            Ok(id)
        })
    }

    /// Configuration for a context the host starts itself.
    fn config_for(&self, id: ContextId, name: &str) -> AgentConfig {
        AgentConfig {
            context_id: id,
            parent_ids: vec![HOST_ID],
            max_payload: DEFAULT_MAX_PAYLOAD,
            log_level: self.log_level,
            name: name.to_string(),
        }
    }

    /// A local or privilege hop: started here for a chain's first hop,
    /// else by the agent of the hop before.
    async fn start_hop(
        &self,
        parent: Option<ContextId>,
        id: ContextId,
        chain: &Chain,
        hop: &Hop,
        password: Option<Secret>,
    ) -> Result<(), HopFailure> {
        let name = &chain.to_string();
        let Some(parent) = parent else {
            let started = here::start(
                hop,
                password.as_ref(),
                self.config_for(id, name),
                self.agent_dir_for(chain),
            )
            .await?;
            self.router
                .attach(name, id, StreamRole::Child, started.reader, started.writer)
                .await;
            self.children.lock().await.extend(started.process);
            return Ok(());
        };
        let request = ConnectRequest {
            new_id: id,
            hop: hop.clone(),
            name: name.to_string(),
            log_level: self.log_level,
            password,
            agent_dir: self.agent_dir_for(chain),
        };
        remote::start_via(&self.router, parent, &request).await
    }

    /// sudo/su/doas. The password goes down with the request; if the hop
    /// asks for one we do not have, ask on the terminal and retry once.
    async fn start_privileged(
        &self,
        parent: Option<ContextId>,
        chain: &Chain,
        hop: &Hop,
        label: &str,
    ) -> Result<ContextId, HopFailure> {
        let mut password = self.privilege_password.clone();
        let mut asked = false;
        loop {
            let id = self.next_context_id();
            let failure = match self
                .start_hop(parent, id, chain, hop, password.clone())
                .await
            {
                Ok(()) => return Ok(id),
                Err(f) => f,
            };
            if !failure.password_required() || password.is_some() || asked {
                return Err(failure);
            }
            asked = true;
            let prompt = format!("[mitogen-fakessh] password for {label}: ");
            let answer = tokio::task::spawn_blocking(move || crate::prompt::ask_tty(&prompt))
                .await
                .ok()
                .flatten();
            match answer {
                Some(p) => password = Some(Secret(p)),
                None => return Err(HopFailure::NoTerminalForPassword),
            }
        }
    }

    /// The ssh config for a chain's ssh hops (the client's `-F` file, for an
    /// on-demand chain that named one) and the client's options to put
    /// ahead of it.
    fn client_config(
        &self,
        chain: &Chain,
    ) -> Result<(Cow<'_, SshConfig>, ClientOptions), ConfigError> {
        let client = self
            .client_options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(chain)
            .cloned()
            .unwrap_or_default();
        let config = match client.config_file.as_deref() {
            None => Cow::Borrowed(&self.ssh.config),
            Some("none") => Cow::Owned(SshConfig::default()),
            Some(path) => {
                let path = std::path::Path::new(path);
                if !path.is_file() {
                    return Err(ConfigError::NoSuchFile(path.to_path_buf()));
                }
                Cow::Owned(SshConfig::load_user(path)?)
            }
        };
        Ok((config, client))
    }

    /// An ssh hop: TCP from here (or a ProxyCommand or ProxyJump), or
    /// through a tunnel opened by the previous hop's agent; the handshake
    /// always runs here.
    async fn start_ssh(
        &self,
        parent: Option<ContextId>,
        id: ContextId,
        chain: &Chain,
        host: &str,
        user: Option<&str>,
        port: Option<u16>,
    ) -> Result<(), HopFailure> {
        let name = chain.to_string();
        // Read and hash the agents while the connection is made.
        let agents = self.agents.clone();
        let prefetch = tokio::task::spawn_blocking(move || agents.prefetch());
        let (config, client) = self.client_config(chain).map_err(SshError::from)?;
        // `Match exec` may run commands: off the async path.
        let cfg = tokio::task::block_in_place(|| {
            let session = client.session.unwrap_or_else(SessionAsked::transport);
            config.resolve_for(host, user, port, &client.options, &session)
        })
        .map_err(SshError::from)?;
        let connection = match parent {
            None => {
                let stream = direct::stream(&name, &cfg, &config, &self.jumps).await?;
                connect::open_session(&name, &cfg, stream).await?
            }
            Some(via) => {
                if cfg.proxy_command.is_some() || cfg.proxy_jump.is_some() {
                    info!(
                        "{name}: the ssh config's ProxyCommand/ProxyJump is not used: this hop is reached through the one before it"
                    );
                }
                let session = self.next_session_id();
                let (stream, error) =
                    tunnel::open(&self.router, via, session, &cfg.hostname, cfg.port).await;
                connect::open_session(&name, &cfg, stream)
                    .await
                    .map_err(|e| match error.lock().ok().and_then(|g| g.clone()) {
                        Some(why) => SshError::Tunnel(why),
                        None => e,
                    })?
            }
        };
        let _ = prefetch.await;
        let config = self.config_for(id, &name);
        let placement = Placement {
            agent_dir: self.agent_dir_for(chain),
            ..self.placement.clone()
        };
        let connection = Arc::new(connection);
        let agent = ssh::agent::start(
            connection.clone(),
            config,
            &self.agents,
            &placement,
            &self.upload_slots,
        )
        .await?;
        info!(
            "{name}: agent pid {} as {}{}",
            agent.hello.pid,
            agent.hello.user,
            if agent.uploaded {
                " (uploaded)"
            } else {
                " (cached)"
            }
        );
        let staged = Staged::default();
        self.router
            .attach_with_lanes(
                &name,
                id,
                StreamRole::Child,
                agent.reader,
                agent.writer,
                staged.clone(),
            )
            .await;
        // More channels toward the agent once a push wants them, if the
        // path is long enough for one channel's window to be the limit
        // (timed now, the agent's ends made now); in the background,
        // holding the connection only weakly until then.
        // A hop reached through the one before it too: its round trip is
        // the whole way's, and its channels go inside the tunnel.
        let router = self.router.clone();
        let extra = self.extra_lanes;
        let connection = Arc::downgrade(&connection);
        tokio::spawn(ssh::lanes::widen(
            router, id, name, connection, staged, extra,
        ));
        Ok(())
    }

    /// Ask every agent we started to exit, and give them a moment to do so.
    pub async fn shutdown(&self) {
        self.router.close_all().await;
        let mut children = self.children.lock().await;
        for child in children.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
    }
}
