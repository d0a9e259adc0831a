//! Which chain serves a hostname, and the contexts established for chains.
//!
//! Contexts are created on first use and shared: every session for the same
//! chain (and every chain sharing a prefix) reuses the same agents.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use router_core::Router;
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Frame};
use router_core::message::{
    AgentConfig, ConnectFailure, ConnectRequest, ContextId, FIRST_SESSION_ID, HOST_ID, HopKind,
    Secret, SessionRequest, handle,
};
use router_core::router::StreamRole;
use tokio::process::Child;
use tokio::sync::{Mutex, OnceCell};
use tracing::info;

use super::tunnel;
use crate::chain::{Chain, HopSpec};
use crate::hop;
use crate::ssh::config::SshConfig;
use crate::ssh::{self, SshSettings, SshStream};

/// The user's routing table: `--host` mappings, then `--to`, then ssh:NAME.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub default: Option<Chain>,
    pub hosts: Vec<(String, Chain)>,
}

impl Routing {
    /// The chain that serves a session request, and whether it is the
    /// on-demand `ssh:[USER@]HOST[:PORT]` (no `--host` or `--to` names it),
    /// which the client's own ssh options may configure.
    pub fn chain_for(&self, req: &SessionRequest) -> (Chain, bool) {
        if let Some((_, chain)) = self.hosts.iter().find(|(name, _)| *name == req.host) {
            return (chain.clone(), false);
        }
        if let Some(chain) = &self.default {
            return (chain.clone(), false);
        }
        let chain = Chain {
            hops: vec![HopSpec::Ssh {
                user: req.user.clone(),
                host: req.host.clone(),
                port: req.port,
            }],
        };
        (chain, true)
    }
}

impl Routing {
    /// When `--host` mappings exist but none names `host` (and there is no
    /// `--to`), say so: the user probably forgot one.
    pub fn unmapped_hint(&self, host: &str) -> Option<String> {
        if self.default.is_some()
            || self.hosts.is_empty()
            || self.hosts.iter().any(|(n, _)| n == host)
        {
            return None;
        }
        let known: Vec<&str> = self.hosts.iter().map(|(n, _)| n.as_str()).collect();
        Some(format!(
            "hint: no context for host '{host}' (known: {}); it was tried as ssh:{host}; use --host {host}=CHAIN",
            known.join(", ")
        ))
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
    next_session: AtomicU32,
    ssh: SshSettings,
    /// Agents the host started itself; kept so they are reaped.
    children: Mutex<Vec<Child>>,
    /// Jump-host connections that carry a ProxyJump target.
    jumps: Mutex<Vec<russh::client::Handle<ssh::HostKeyCheck>>>,
    /// The client's ssh options for on-demand chains, from the session that
    /// first asked for each (later sessions reuse the connection as it is,
    /// as with OpenSSH's ControlMaster).
    client_options: std::sync::Mutex<HashMap<Chain, ClientOptions>>,
}

/// ssh `-o` options as (keyword, value), in order.
type SshOptions = Vec<(String, String)>;

/// What a client's ssh command line says about its connection.
#[derive(Clone, Debug, Default)]
struct ClientOptions {
    /// `-o` (and `-i`, `-J`), in order.
    options: SshOptions,
    /// `-F`: this file instead of the host's ssh config (`none`: no file).
    config_file: Option<String>,
}

impl Connector {
    pub fn new(
        router: Arc<Router>,
        routing: Routing,
        log_level: u8,
        ssh: SshSettings,
    ) -> Arc<Connector> {
        Arc::new(Connector {
            router,
            routing,
            log_level,
            contexts: std::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            next_session: AtomicU32::new(FIRST_SESSION_ID),
            ssh,
            children: Mutex::new(Vec::new()),
            jumps: Mutex::new(Vec::new()),
            client_options: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A fresh context id for a shim session or a tunnel.
    pub fn next_session_id(&self) -> ContextId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
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

    /// [`connect`](Self::connect) an on-demand chain, configured by the
    /// client's ssh options if it is the first to ask for it.
    pub async fn connect_on_demand(
        self: &Arc<Self>,
        chain: &Chain,
        request: &SessionRequest,
    ) -> Result<ContextId, String> {
        self.client_options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(chain.clone())
            .or_insert_with(|| ClientOptions {
                options: request.ssh_options.clone(),
                config_file: request.ssh_config_file.clone(),
            });
        self.connect(chain).await
    }

    /// The ssh config for a chain's ssh hops (the client's `-F` file, for an
    /// on-demand chain that named one) and the client's options to put
    /// ahead of it.
    fn client_config(&self, chain: &Chain) -> Result<(Cow<'_, SshConfig>, SshOptions), String> {
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
                    return Err(format!("ssh -F {}: no such file", path.display()));
                }
                Cow::Owned(SshConfig::load_user(path)?)
            }
        };
        Ok((config, client.options))
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
            let id = match hop {
                HopSpec::Local => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    match parent {
                        None => self
                            .start_here(id, &name, &HopKind::Local, None)
                            .await
                            .map_err(|f| f.message)?,
                        Some(parent) => self
                            .start_via(parent, id, &name, HopKind::Local, None)
                            .await
                            .map_err(|f| f.message)?,
                    }
                    id
                }
                HopSpec::Ssh { user, host, port } => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let (config, options) = self
                        .client_config(&chain)
                        .map_err(|e| format!("{name}: {e}"))?;
                    // `Match exec` may run commands: off the async path.
                    let cfg = tokio::task::block_in_place(|| {
                        config.resolve_with(host, user.as_deref(), *port, &options)
                    })
                    .map_err(|e| format!("{name}: {e}"))?;
                    self.start_ssh(parent, id, &name, &cfg, &config).await?;
                    id
                }
                HopSpec::Sudo { user } | HopSpec::Su { user } | HopSpec::Doas { user } => {
                    let kind = match hop {
                        HopSpec::Sudo { .. } => HopKind::Sudo { user: user.clone() },
                        HopSpec::Su { .. } => HopKind::Su { user: user.clone() },
                        _ => HopKind::Doas { user: user.clone() },
                    };
                    let place = if n > 1 {
                        chain.prefix(n - 1).to_string()
                    } else {
                        "the local host".to_string()
                    };
                    let label = format!("{hop} on {place}");
                    self.start_privileged(parent, &name, &label, kind).await?
                }
            };
            info!("{name}: connected as context {id}");
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

    /// First hop (local, sudo, su, doas): the host starts the agent itself.
    async fn start_here(
        &self,
        id: ContextId,
        name: &str,
        kind: &HopKind,
        password: Option<&Secret>,
    ) -> Result<(), ConnectFailure> {
        let started = hop::start(kind, password, self.config_for(id, name)).await?;
        self.router
            .attach(name, id, StreamRole::Child, started.reader, started.writer);
        self.children.lock().await.push(started.child);
        Ok(())
    }

    /// sudo/su/doas, started by the previous hop's agent (or by us when the
    /// chain starts with one). The password goes down with the request; if
    /// the hop asks for one we do not have, ask on the terminal and retry once.
    async fn start_privileged(
        &self,
        parent: Option<ContextId>,
        name: &str,
        label: &str,
        kind: HopKind,
    ) -> Result<ContextId, String> {
        let mut password = self.ssh.password.clone().map(Secret);
        let mut asked = false;
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let result = match parent {
                Some(parent) => {
                    self.start_via(parent, id, name, kind.clone(), password.clone())
                        .await
                }
                None => self.start_here(id, name, &kind, password.as_ref()).await,
            };
            let failure = match result {
                Ok(()) => return Ok(id),
                Err(f) => f,
            };
            // Say which hop failed in the user's terms, not the chain's.
            let reason = failure
                .message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(&failure.message)
                .to_string();
            if failure.password_required && password.is_none() && !asked {
                asked = true;
                match tokio::task::spawn_blocking({
                    let label = label.to_string();
                    move || {
                        crate::prompt::ask_tty(&format!("[mitogen-fakessh] password for {label}: "))
                            .map(Secret)
                    }
                })
                .await
                .ok()
                .flatten()
                {
                    Some(p) => {
                        password = Some(p);
                        continue;
                    }
                    None => {
                        return Err(format!(
                            "{label}: a password is required and there is no terminal to ask on; use --password-file FILE"
                        ));
                    }
                }
            }
            return Err(format!("{label}: {reason}"));
        }
    }

    /// An ssh hop: TCP from here (or through ProxyJump), or through a tunnel
    /// opened by the previous hop's agent; the handshake always runs here.
    async fn start_ssh(
        &self,
        parent: Option<ContextId>,
        id: ContextId,
        name: &str,
        cfg: &ssh::config::HostConfig,
        config: &SshConfig,
    ) -> Result<(), String> {
        let stream: Box<dyn SshStream> = match parent {
            Some(via) => {
                if cfg.proxy_command.is_some() || cfg.proxy_jump.is_some() {
                    info!(
                        "{name}: the ssh config's ProxyCommand/ProxyJump is not used: this hop is reached through the one before it"
                    );
                }
                let (stream, error) = tunnel::open(
                    &self.router,
                    via,
                    self.next_session_id(),
                    &cfg.hostname,
                    cfg.port,
                );
                let handle = ssh::open_session(name, cfg, stream, &self.ssh)
                    .await
                    .map_err(|e| match error.lock().ok().and_then(|g| g.clone()) {
                        Some(why) => format!("{name}: {why}"),
                        None => e,
                    })?;
                return self.finish_ssh(id, name, handle).await;
            }
            None => match (&cfg.proxy_command, &cfg.proxy_jump) {
                (Some(command), _) => Box::new(ssh::proxy::connect(name, command)?),
                (None, Some(jumps)) => {
                    Box::new(self.through_jumps(name, jumps, cfg, config).await?)
                }
                (None, None) => Box::new(ssh::connect_tcp(name, cfg).await?),
            },
        };
        let handle = ssh::open_session(name, cfg, stream, &self.ssh).await?;
        self.finish_ssh(id, name, handle).await
    }

    async fn finish_ssh(
        &self,
        id: ContextId,
        name: &str,
        handle: russh::client::Handle<ssh::HostKeyCheck>,
    ) -> Result<(), String> {
        let agent = ssh::start_agent(name, handle, self.config_for(id, name)).await?;
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
        self.router
            .attach(name, id, StreamRole::Child, agent.reader, agent.writer);
        Ok(())
    }

    /// ProxyJump: ssh to each jump host in turn, then a direct-tcpip
    /// channel to the target (like OpenSSH's `-J`).
    async fn through_jumps(
        &self,
        name: &str,
        jumps: &str,
        target: &ssh::config::HostConfig,
        config: &SshConfig,
    ) -> Result<impl SshStream + use<>, String> {
        let mut previous: Option<russh::client::Handle<ssh::HostKeyCheck>> = None;
        for jump in jumps.split(',').map(str::trim) {
            let spec = format!("ssh:{jump}")
                .parse::<HopSpec>()
                .map_err(|e| format!("{name}: ProxyJump {jump:?}: {e}"))?;
            let HopSpec::Ssh { user, host, port } = spec else {
                unreachable!()
            };
            let cfg = tokio::task::block_in_place(|| config.resolve(&host, user.as_deref(), port))
                .map_err(|e| format!("{name}: ProxyJump {jump}: {e}"))?;
            let jump_name = format!("{name} (ProxyJump {jump})");
            let handle = match previous.take() {
                None => {
                    ssh::open_session(
                        &jump_name,
                        &cfg,
                        ssh::connect_tcp(&jump_name, &cfg).await?,
                        &self.ssh,
                    )
                    .await?
                }
                Some(prev) => {
                    let stream = direct_tcpip(&jump_name, &prev, &cfg.hostname, cfg.port).await?;
                    self.jumps.lock().await.push(prev);
                    ssh::open_session(&jump_name, &cfg, stream, &self.ssh).await?
                }
            };
            previous = Some(handle);
        }
        let last = previous.ok_or_else(|| format!("{name}: empty ProxyJump"))?;
        let stream = direct_tcpip(name, &last, &target.hostname, target.port).await?;
        self.jumps.lock().await.push(last);
        Ok(stream)
    }

    /// Later hops: ask the previous hop's agent to start it.
    async fn start_via(
        &self,
        parent: ContextId,
        id: ContextId,
        name: &str,
        hop: HopKind,
        password: Option<Secret>,
    ) -> Result<(), ConnectFailure> {
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
                password,
            },
        ));
        let answer = tokio::time::timeout(Duration::from_secs(120), rx.recv()).await;
        self.router.remove_handler(reply);
        let frame = answer
            .map_err(|_| ConnectFailure::new(format!("{name}: no answer from the previous hop")))?
            .ok_or_else(|| ConnectFailure::new(format!("{name}: connection attempt abandoned")))?;
        if frame.is_dead() {
            return Err(ConnectFailure::new(format!(
                "{name}: {}",
                frame.dead_reason()
            )));
        }
        frame
            .decode_cbor::<Result<(), ConnectFailure>>("connect reply")
            .map_err(|e| ConnectFailure::new(format!("{name}: {e}")))?
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

async fn direct_tcpip(
    name: &str,
    via: &russh::client::Handle<ssh::HostKeyCheck>,
    host: &str,
    port: u16,
) -> Result<russh::ChannelStream<russh::client::Msg>, String> {
    via.channel_open_direct_tcpip(host, port as u32, "127.0.0.1", 0)
        .await
        .map(|c| c.into_stream())
        .map_err(|e| format!("{name}: the jump host could not connect to {host}:{port}: {e}"))
}
