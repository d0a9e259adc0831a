//! Forwarding on the agent's side: connections it makes for a client
//! (`ssh -L`, `-D`, `-W`: TCP or a Unix socket, a greeting first),
//! listeners it holds for one (`ssh -R`, and the `SSH_AUTH_SOCK` of
//! `ssh -A`), and the connections those accepted, each waiting under a
//! token until the client takes it as a session of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use router::Router;
use router::message::ContextId;
use router::session::{
    CommandSession, ListenAddress, ListenerAction, ListenerSession, RemoteCommand, SESSION_QUEUE,
    SessionEvent, ToClient, ToCommand, WAITING_MAX,
};
use router::session_link::SessionLink;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::command::{SpawnError, Started};
use super::session::{self, SessionHandle, SessionTask};

/// How long an accepted connection waits for its client to take it.
const TAKE_WITHIN: Duration = Duration::from_secs(60);

/// A connection a listener accepted, not yet taken.
struct Waiting {
    read: Box<dyn AsyncRead + Send + Unpin>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
    since: Instant,
}

/// The agent's listeners and what they accepted.
#[derive(Default)]
pub struct Forwards {
    waiting: Arc<Mutex<HashMap<u64, Waiting>>>,
    /// `ssh -A` sockets, by session: their directory and listener task.
    agent_sockets: HashMap<ContextId, (std::path::PathBuf, tokio::task::AbortHandle)>,
}

/// A token nobody can guess from the ones before it.
fn token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn started(
    read: impl AsyncRead + Send + Unpin + 'static,
    write: impl AsyncWrite + Send + Unpin + 'static,
    greeting: Vec<u8>,
) -> Started {
    let read: Box<dyn AsyncRead + Send + Unpin> = match greeting.is_empty() {
        true => Box::new(read),
        false => Box::new(std::io::Cursor::new(greeting).chain(read)),
    };
    Started {
        stdin: Some(Box::new(write)),
        stdout: Some(read),
        stderr: None,
        child: None,
        pty: None,
    }
}

impl Forwards {
    /// The session for a stream command (a connection, a listener, an
    /// accepted connection); `None` for a command to run.
    pub fn start(
        &mut self,
        router: Arc<Router>,
        peer: ContextId,
        command: &RemoteCommand,
    ) -> Option<(SessionHandle, SessionTask)> {
        let r = router.clone();
        let stream = move |starting: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Started, SpawnError>> + Send>,
        >| {
            session::start(
                r.clone(),
                peer,
                CommandSession::stream().sharing_stdin_growth(&session::STDIN_GROWTH),
                None,
                starting,
            )
        };
        Some(match command.clone() {
            RemoteCommand::TcpConnect {
                host,
                port,
                greeting,
            } => stream(Box::pin(async move {
                let mut started = super::command::connect(&host, port).await?;
                if !greeting.is_empty()
                    && let Some(read) = started.stdout.take()
                {
                    started.stdout = Some(Box::new(std::io::Cursor::new(greeting).chain(read)));
                }
                Ok(started)
            })),
            RemoteCommand::UnixConnect { path } => stream(Box::pin(async move {
                let sock = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                    SpawnError::ConnectPath {
                        path: path.clone(),
                        reason: super::command::strerror(&e),
                    }
                })?;
                let (read, write) = sock.into_split();
                Ok(started(read, write, Vec::new()))
            })),
            RemoteCommand::TakeAccepted { token } => {
                let waiting = self
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&token);
                stream(Box::pin(async move {
                    let w = waiting.ok_or(SpawnError::NotAccepted)?;
                    Ok(started(w.read, w.write, Vec::new()))
                }))
            }
            RemoteCommand::Listen(address) => self.listen(router, peer, address),
            _ => return None,
        })
    }

    /// A `-R` listener as a session: `Listening`, then `Accepted` for each
    /// connection, until the client ends it ([`ListenerSession`] decides).
    fn listen(
        &mut self,
        router: Arc<Router>,
        peer: ContextId,
        address: ListenAddress,
    ) -> (SessionHandle, SessionTask) {
        let (inbox, mut messages) = mpsc::channel::<ToCommand>(SESSION_QUEUE);
        let waiting = self.waiting.clone();
        let task = async move {
            let link = SessionLink::command_end(router, peer);
            let mut machine = ListenerSession::new();
            let mut listener = match Listener::bind(&address).await {
                Ok(l) => {
                    info!("session {peer}: listening on {}", l.describe());
                    machine.bound(l.port());
                    Some(l)
                }
                Err(why) => {
                    machine.bind_failed(why.to_string());
                    None
                }
            };
            while !machine.is_done() {
                while let Some(action) = machine.next_action() {
                    match action {
                        ListenerAction::Send(event) => {
                            link.to_client(&ToClient::Event(event)).await;
                        }
                        ListenerAction::Stop => {
                            if let Some(l) = listener.take() {
                                l.remove();
                            }
                        }
                    }
                }
                if machine.is_done() {
                    break;
                }
                let Some(l) = listener.as_mut() else { break };
                tokio::select! {
                    accepted = l.accept() => match accepted {
                        Ok((read, write)) => match keep(&waiting, read, write) {
                            Some(token) => machine.accepted(token),
                            None => debug!("session {peer}: {WAITING_MAX} connections wait already: refused one"),
                        },
                        Err(e) => debug!("session {peer}: accept: {e}"),
                    },
                    msg = messages.recv() => match msg {
                        Some(msg) => {
                            if let Err(e) = machine.on_message(msg) {
                                debug!("session {peer}: {e}");
                                machine.close();
                            }
                        }
                        None => machine.close(),
                    },
                }
            }
            peer
        };
        (SessionHandle { inbox, pgid: None }, Box::pin(task))
    }

    /// `ssh -A` for session `peer`: a Unix socket in a fresh 0700
    /// directory of this account's; its connections come to the client as
    /// `Accepted`. Returns the path for `SSH_AUTH_SOCK`.
    pub fn agent_socket(
        &mut self,
        router: Arc<Router>,
        peer: ContextId,
    ) -> Result<String, SpawnError> {
        let template = std::env::temp_dir().join("mitogen-fakessh-agent.XXXXXXXX");
        let dir =
            nix::unistd::mkdtemp(&template).map_err(|e| SpawnError::AgentSocket(e.to_string()))?;
        let path = dir.join(format!("agent.{}", std::process::id()));
        let listener = router::unix_listener::bind_owner_only(&path)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::UnixListener::from_std(l)
            })
            .map_err(|e| SpawnError::AgentSocket(e.to_string()))?;
        let waiting = self.waiting.clone();
        let link = SessionLink::command_end(router, peer);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (read, write) = sock.into_split();
                let Some(token) = keep(&waiting, read, write) else {
                    debug!("session {peer}: {WAITING_MAX} connections wait already: refused one");
                    continue;
                };
                link.to_client(&ToClient::Event(SessionEvent::Accepted { token }))
                    .await;
            }
        });
        self.agent_sockets.insert(peer, (dir, task.abort_handle()));
        Ok(path.display().to_string())
    }

    /// Session `peer` is over: its agent socket goes.
    pub fn session_ended(&mut self, peer: ContextId) {
        if let Some((dir, task)) = self.agent_sockets.remove(&peer) {
            task.abort();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        for (_, (dir, task)) in self.agent_sockets.drain() {
            task.abort();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Keep an accepted connection for its client, forgetting ones never
/// taken; `None` (the connection is dropped: closed) when
/// [`WAITING_MAX`] already wait, so a flood of connections from whoever
/// can reach the listener costs a bounded amount of memory.
fn keep(
    waiting: &Mutex<HashMap<u64, Waiting>>,
    read: impl AsyncRead + Send + Unpin + 'static,
    write: impl AsyncWrite + Send + Unpin + 'static,
) -> Option<u64> {
    let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
    waiting.retain(|_, w| w.since.elapsed() < TAKE_WITHIN);
    if waiting.len() >= WAITING_MAX {
        return None;
    }
    let token = token();
    waiting.insert(
        token,
        Waiting {
            read: Box::new(read),
            write: Box::new(write),
            since: Instant::now(),
        },
    );
    Some(token)
}

/// The two halves of an accepted connection.
type Halves = (
    Box<dyn AsyncRead + Send + Unpin>,
    Box<dyn AsyncWrite + Send + Unpin>,
);

/// Why a `-R` listener could not be had.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("bind [{host}]:{port}: {reason}")]
    Tcp {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("bind {path}: {reason}")]
    Unix { path: String, reason: String },
    #[error("nothing to listen on")]
    Nowhere,
}

/// A `-R` listener (TCP on one or two addresses, or a Unix socket): its
/// accept loops feed one queue, and stop when it is dropped.
struct Listener {
    accepted: mpsc::Receiver<std::io::Result<Halves>>,
    loops: tokio::task::JoinSet<()>,
    port: u16,
    description: String,
    unix_path: Option<String>,
}

impl Listener {
    /// Bind as OpenSSH's sshd does for a remote forward: loopback unless
    /// the client asked for an address (`*` or empty: every interface).
    async fn bind(address: &ListenAddress) -> Result<Listener, ListenError> {
        let (tx, accepted) = mpsc::channel(16);
        let mut loops = tokio::task::JoinSet::new();
        match address {
            ListenAddress::Tcp { bind, port } => {
                let hosts: Vec<&str> = match bind.as_deref() {
                    None | Some("localhost") => vec!["127.0.0.1", "::1"],
                    Some("") | Some("*") => vec!["0.0.0.0", "::"],
                    Some(host) => vec![host],
                };
                let mut port = *port;
                let mut bound = Vec::new();
                let mut first_error = None;
                for host in hosts {
                    match tokio::net::TcpListener::bind((host, port)).await {
                        Ok(l) => {
                            // An allocated port is the same on every address.
                            port = l.local_addr().map(|a| a.port()).unwrap_or(port);
                            bound.push(l.local_addr().map(|a| a.to_string()).unwrap_or_default());
                            let tx = tx.clone();
                            loops.spawn(async move {
                                loop {
                                    let accepted = l.accept().await.map(|(sock, _)| {
                                        let _ = sock.set_nodelay(true);
                                        let (r, w) = sock.into_split();
                                        (
                                            Box::new(r) as Box<dyn AsyncRead + Send + Unpin>,
                                            Box::new(w) as Box<dyn AsyncWrite + Send + Unpin>,
                                        )
                                    });
                                    if tx.send(accepted).await.is_err() {
                                        return;
                                    }
                                }
                            });
                        }
                        Err(e) => {
                            first_error.get_or_insert(ListenError::Tcp {
                                host: host.to_string(),
                                port,
                                reason: super::command::strerror(&e),
                            });
                        }
                    }
                }
                if bound.is_empty() {
                    return Err(first_error.unwrap_or(ListenError::Nowhere));
                }
                Ok(Listener {
                    accepted,
                    loops,
                    port,
                    description: bound.join(", "),
                    unix_path: None,
                })
            }
            ListenAddress::Unix(path) => {
                // Mode 0600 from the moment the path exists (OpenSSH's
                // StreamLocalBindMask 0177), not chmod'ed after the bind.
                let l = router::unix_listener::bind_owner_only(path.as_ref())
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        tokio::net::UnixListener::from_std(l)
                    })
                    .map_err(|e| ListenError::Unix {
                        path: path.clone(),
                        reason: super::command::strerror(&e),
                    })?;
                loops.spawn(async move {
                    loop {
                        let accepted = l.accept().await.map(|(sock, _)| {
                            let (r, w) = sock.into_split();
                            (
                                Box::new(r) as Box<dyn AsyncRead + Send + Unpin>,
                                Box::new(w) as Box<dyn AsyncWrite + Send + Unpin>,
                            )
                        });
                        if tx.send(accepted).await.is_err() {
                            return;
                        }
                    }
                });
                Ok(Listener {
                    accepted,
                    loops,
                    port: 0,
                    description: path.clone(),
                    unix_path: Some(path.clone()),
                })
            }
        }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn accept(&mut self) -> std::io::Result<Halves> {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    /// Stop accepting; a Unix socket's file goes too.
    fn remove(mut self) {
        self.loops.abort_all();
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_accepted_connections_waits_within_its_bound() {
        let waiting = Mutex::new(HashMap::new());
        let kept = (0..WAITING_MAX + 10)
            .filter(|_| keep(&waiting, tokio::io::empty(), tokio::io::sink()).is_some())
            .count();
        assert_eq!(kept, WAITING_MAX);
        let token = *waiting.lock().unwrap().keys().next().unwrap();
        waiting.lock().unwrap().remove(&token);
        assert!(keep(&waiting, tokio::io::empty(), tokio::io::sink()).is_some());
    }
}
