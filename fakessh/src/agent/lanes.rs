//! An ssh hop's agent's end of lanes ([`router::lane_rules`]): a Unix
//! socket and FIFOs in a directory only this account can enter. The host's
//! extra channels connect to the socket (`direct-streamlocal`, sshd itself
//! connects, as this account), or where the server forbids that, write
//! into the FIFOs with `cat`; once each has delivered the token, they are
//! staged for the parent stream's reader, which goes round them from the
//! switch frame on.
//!
//! The directory is made by `mkdtemp` (mode 0700, a fresh name) under
//! `$TMPDIR` or `/tmp` once the host found the round trip long, and removed
//! as soon as the lanes joined or failed to, when the host gave up waiting
//! for a push to want them, or when the agent ends: another account never
//! gets to open a FIFO or connect to the socket, and nothing is left
//! behind (unless a signal kills the agent). That place must be safe as the agent
//! cache's are: it and every directory above it belong to root or to this
//! account, and one that others may write to is sticky (else another
//! account could move our directory away and put its own FIFOs in its
//! place). The FIFOs are opened and the socket bound before the host hears
//! where they are, so the ones read are ours whatever happens to the names
//! afterwards; a lane that writes elsewhere never delivers the token, and
//! the join fails. A connection to the socket from another account fails
//! the join too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use router::frame::Frame;
use router::lane_rules::{
    JoinLanes, LanesError, LanesReply, LanesRequest, MAX_EXTRA_LANES, SOCKET_NAME, TOKEN_LEN,
};
use router::lanes::{LaneRead, Staged};
use router::message::{ContextId, Handle};
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;
use tokio::net::unix::pipe;
use tracing::{debug, info, warn};

/// How long the lanes may take, all of them, to deliver their token after
/// the host asked to join them (it opened their channels and wrote the
/// token first, so this is a round trip and a process start).
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The socket (unless it could not be bound) and FIFOs made, open, and
/// waiting for their lanes.
pub struct Prepared {
    dir: PathBuf,
    socket: Option<UnixListener>,
    fifos: Vec<PathBuf>,
    opened: Vec<pipe::Receiver>,
    token: [u8; TOKEN_LEN],
    /// The names made, until they are removed: shared with [`Lanes`],
    /// which removes them if the agent ends first.
    names: Names,
}

/// Names made in the lanes' directory, the directory last.
type Names = Arc<Mutex<Vec<PathBuf>>>;

/// Remove `names` and forget them, at once for whoever shares them: once
/// removed, the directory's name may be anyone's.
fn remove_names(names: &Names) {
    let mut names = names.lock().unwrap_or_else(|p| p.into_inner());
    for name in names.drain(..) {
        let _ = std::fs::remove_file(&name).or_else(|_| std::fs::remove_dir(&name));
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        remove_names(&self.names);
    }
}

/// Why lanes could not be made or joined (the host goes on with one
/// channel).
#[derive(Debug, thiserror::Error)]
pub enum LanesFailure {
    #[error("making the lanes' directory: {0}")]
    Dir(nix::Error),
    #[error("{0} is not a safe place for the lanes' FIFOs: {1}")]
    UnsafePlace(String, &'static str),
    #[error("making a lane's FIFO: {0}")]
    Fifo(nix::Error),
    #[error("taking a lane on the socket: {0}")]
    Accept(std::io::Error),
    #[error("a lane came to a socket that was not made")]
    NoSocket,
    #[error("a connection to the lanes' socket from account {0}, not this one or root")]
    Stranger(u32),
    #[error("a lane on the socket named lane {0}, not one asked to join or twice")]
    UnaskedLane(u8),
    #[error("the lanes did not all connect to the socket in time ({JOIN_TIMEOUT:?})")]
    NoConnection,
    #[error("reading a random token: {0}")]
    Token(std::io::Error),
    #[error("opening lane {lane}: {error}")]
    Open { lane: usize, error: std::io::Error },
    #[error("lane {0} did not deliver its token in time ({JOIN_TIMEOUT:?} for all)")]
    NoToken(usize),
    #[error("lane {0} delivered a wrong token")]
    WrongToken(usize),
    #[error(transparent)]
    Join(LanesError),
}

/// Make `lanes` FIFOs (at most [`MAX_EXTRA_LANES`]).
pub fn prepare(lanes: u8) -> Result<Prepared, LanesFailure> {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let base = safe_place(&base)?;
    let dir = nix::unistd::mkdtemp(&base.join("mitogen-fakessh-lanes-XXXXXX"))
        .map_err(LanesFailure::Dir)?;
    let names: Names = Arc::new(Mutex::new(vec![dir.clone()]));
    let mut prepared = Prepared {
        dir,
        socket: None,
        fifos: Vec::new(),
        opened: Vec::new(),
        token: [0; TOKEN_LEN],
        names,
    };
    // A socket's path has a limit (108 bytes on Linux): past it, FIFOs only.
    let socket = prepared.dir.join(SOCKET_NAME);
    match UnixListener::bind(&socket) {
        Ok(listener) => {
            prepared.socket = Some(listener);
            prepared.made(socket);
        }
        Err(e) => debug!("lanes: no socket ({e}): FIFOs only"),
    }
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut prepared.token))
        .map_err(LanesFailure::Token)?;
    for k in 1..=lanes.min(MAX_EXTRA_LANES) {
        let fifo = prepared.dir.join(k.to_string());
        nix::unistd::mkfifo(
            &fifo,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .map_err(LanesFailure::Fifo)?;
        prepared.made(fifo.clone());
        prepared.fifos.push(fifo.clone());
        let lane = usize::from(k);
        let rx = open(&fifo).map_err(|error| LanesFailure::Open { lane, error })?;
        prepared.opened.push(rx);
    }
    Ok(prepared)
}

/// `base`, resolved, if it and every directory above it belong to root or
/// to us, and those others may write to are sticky.
fn safe_place(base: &Path) -> Result<PathBuf, LanesFailure> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_place = |why| LanesFailure::UnsafePlace(base.display().to_string(), why);
    let resolved = base
        .canonicalize()
        .map_err(|_| unsafe_place("it does not exist"))?;
    let me = nix::unistd::geteuid().as_raw();
    for dir in resolved.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|_| unsafe_place("unreadable"))?;
        if !meta.is_dir() {
            return Err(unsafe_place("not a directory"));
        }
        if meta.uid() != 0 && meta.uid() != me {
            return Err(unsafe_place(
                "another account owns it or a directory above it",
            ));
        }
        let others_write = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        if others_write && !sticky {
            return Err(unsafe_place(
                "others may write to it or a directory above it, and it is not sticky",
            ));
        }
    }
    Ok(resolved)
}

impl Prepared {
    /// What the host is told, `took` after the request came.
    pub fn reply(&self, took: Duration) -> LanesReply {
        LanesReply::Prepared {
            dir: self.dir.to_string_lossy().into_owned(),
            token: self.token.to_vec(),
            socket: self.socket.is_some(),
            took_us: took.as_micros().min(u128::from(u32::MAX)) as u32,
        }
    }

    /// `name` was made in the directory.
    fn made(&self, name: PathBuf) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let at = names.len() - 1;
        names.insert(at, name);
    }

    /// Read the token of each FIFO `join` names, and stage them, in that
    /// order, for the parent stream's reader.
    pub async fn join(self, join: &JoinLanes, staged: &Staged) -> Result<(), LanesFailure> {
        join.check(self.fifos.len()).map_err(LanesFailure::Join)?;
        if join.socket {
            let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
            let readers = self.accept(&join.lanes, deadline).await?;
            drop(self);
            staged.stage_readers(readers);
            return Ok(());
        }
        let mut this = self;
        let token = this.token;
        let mut opened: Vec<Option<pipe::Receiver>> = this.opened.drain(..).map(Some).collect();
        let mut readers: Vec<LaneRead> = Vec::new();
        // One deadline for all of them (the host waits a little longer).
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        for &k in &join.lanes {
            let lane = usize::from(k);
            let Some(mut rx) = opened[lane - 1].take() else {
                return Err(LanesFailure::Join(LanesError::BadJoin(
                    join.lanes.clone(),
                    lane,
                )));
            };
            tokio::time::timeout_at(deadline, read_token(&mut rx, &token, lane))
                .await
                .map_err(|_| LanesFailure::NoToken(lane))??;
            readers.push(Box::new(rx));
        }
        // Their names and the directory go now; the rest are closed.
        drop(opened);
        drop(this);
        staged.stage_readers(readers);
        Ok(())
    }
}

impl Prepared {
    /// Take a connection on the socket for each of `lanes`, each saying its
    /// number and the token first, by `deadline`: their reading halves, in
    /// the order of `lanes`. A connection that says something else, says
    /// nothing in time, or comes from another account than this one or
    /// root (who may enter the directory anyway) is dropped, and the others
    /// are waited for: a channel the host gave up on may still connect. If
    /// the deadline passes first, the last such refusal is the reason.
    async fn accept(
        &self,
        lanes: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<LaneRead>, LanesFailure> {
        let socket = self.socket.as_ref().ok_or(LanesFailure::NoSocket)?;
        let mut taken: Vec<Option<LaneRead>> = lanes.iter().map(|_| None).collect();
        let mut left = lanes.len();
        let mut hellos = tokio::task::JoinSet::new();
        let mut refused = None;
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        while left > 0 {
            tokio::select! {
                accepted = socket.accept() => {
                    let (stream, _) = accepted.map_err(LanesFailure::Accept)?;
                    hellos.spawn(hello(stream, deadline));
                }
                Some(Ok(said)) = hellos.join_next() => {
                    let lane = said.and_then(|(k, token, stream)| {
                        if token != self.token {
                            return Err(LanesFailure::WrongToken(usize::from(k)));
                        }
                        let slot = lanes
                            .iter()
                            .position(|&lane| lane == k)
                            .filter(|&i| taken[i].is_none())
                            .ok_or(LanesFailure::UnaskedLane(k))?;
                        Ok((slot, stream))
                    });
                    match lane {
                        Ok((slot, stream)) => {
                            taken[slot] = Some(Box::new(stream));
                            left -= 1;
                        }
                        Err(why) => {
                            warn!("lanes: {why}");
                            refused = Some(why);
                        }
                    }
                }
                _ = &mut expired => return Err(refused.unwrap_or(LanesFailure::NoConnection)),
            }
        }
        Ok(taken.into_iter().flatten().collect())
    }
}

/// What a connection to the lanes' socket says first: its lane's number
/// and the token, if it comes from this account or root.
async fn hello(
    mut stream: tokio::net::UnixStream,
    deadline: tokio::time::Instant,
) -> Result<(u8, [u8; TOKEN_LEN], tokio::net::UnixStream), LanesFailure> {
    let me = nix::unistd::geteuid().as_raw();
    let peer = stream.peer_cred().map_err(LanesFailure::Accept)?;
    if peer.uid() != me && peer.uid() != 0 {
        return Err(LanesFailure::Stranger(peer.uid()));
    }
    let mut hello = [0u8; 1 + TOKEN_LEN];
    tokio::time::timeout_at(deadline, stream.read_exact(&mut hello))
        .await
        .map_err(|_| LanesFailure::NoConnection)?
        .map_err(LanesFailure::Accept)?;
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&hello[1..]);
    Ok((hello[0], token, stream))
}

fn open(fifo: &Path) -> std::io::Result<pipe::Receiver> {
    let rx = pipe::OpenOptions::new().open_receiver(fifo)?;
    crate::sys::widen_pipe(&rx);
    Ok(rx)
}

/// Read the token from a lane whose writer may not have opened it yet (a
/// FIFO without a writer reads as its end: try again shortly).
async fn read_token(
    rx: &mut pipe::Receiver,
    token: &[u8; TOKEN_LEN],
    lane: usize,
) -> Result<(), LanesFailure> {
    let mut got = Vec::with_capacity(TOKEN_LEN);
    while got.len() < TOKEN_LEN {
        let mut buf = [0u8; TOKEN_LEN];
        let want = TOKEN_LEN - got.len();
        match rx.read(&mut buf[..want]).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(5)).await,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(error) => return Err(LanesFailure::Open { lane, error }),
        }
    }
    match got == token[..] {
        true => Ok(()),
        false => Err(LanesFailure::WrongToken(lane)),
    }
}

/// This agent's lanes: the requests, and their answers.
pub struct Lanes {
    router: std::sync::Arc<router::Router>,
    staged: Staged,
    prepared: Option<Prepared>,
    /// The names made last and not yet removed, removed when the agent
    /// ends (also while a join still waits: the process exits without
    /// dropping its tasks), so that a lane's shell that has not opened its
    /// FIFO yet finds no name instead of waiting for a reader forever.
    /// Once the lanes' [`Prepared`] removed them, this is empty: the names
    /// may be anyone's by then.
    names: Option<Names>,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        if let Some(names) = &self.names {
            remove_names(names);
        }
    }
}

impl Lanes {
    pub fn new(router: std::sync::Arc<router::Router>, staged: Staged) -> Lanes {
        Lanes {
            router,
            staged,
            prepared: None,
            names: None,
        }
    }

    /// Make the socket and the FIFOs (none asked for: answered at once,
    /// the host times it).
    pub async fn on_request(&mut self, request: LanesRequest, from: ContextId, reply_to: Handle) {
        let came = std::time::Instant::now();
        let reply = match request.lanes {
            0 => LanesReply::Refused("no lanes asked for".into()),
            n => match prepare(n) {
                Ok(prepared) => {
                    self.names = Some(prepared.names.clone());
                    let reply = prepared.reply(came.elapsed());
                    self.prepared = Some(prepared);
                    reply
                }
                Err(e) => {
                    warn!("lanes: {e}");
                    LanesReply::Refused(e.to_string())
                }
            },
        };
        let header = self.router.header(from, reply_to);
        self.router.send(Frame::cbor(header, &reply)).await;
    }

    /// Join the lanes the host opened, in the background (reading their
    /// tokens waits for their channels), and answer.
    pub fn on_join(&mut self, request: JoinLanes, from: ContextId, reply_to: Handle) {
        let prepared = self.prepared.take();
        let (router, staged) = (self.router.clone(), self.staged.clone());
        tokio::spawn(async move {
            let lanes = request.lanes.len();
            let result = match prepared {
                None if lanes == 0 => Ok(()),
                None => Err("no lanes were made".to_string()),
                Some(prepared) => prepared
                    .join(&request, &staged)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match &result {
                Ok(()) if lanes > 0 => info!("lanes: {lanes} joined"),
                Ok(()) => {}
                Err(e) => warn!("lanes: {e}"),
            }
            let header = router.header(from, reply_to);
            router.send(Frame::cbor(header, &result)).await;
        });
    }
}

#[cfg(test)]
mod tests;
