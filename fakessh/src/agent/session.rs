//! One session on the agent: a command run as sshd runs it (on pipes, or on
//! a pty for `ssh -t`), or a TCP connection for a tunnel; its stdio pumped
//! under flow control, its exit reported last.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use router_core::Router;
use router_core::frame::Frame;
use router_core::message::{
    ContextId, ExitStatus, OutputStream, PtyRequest, RemoteCommand, SESSION_WINDOW, SessionEvent,
    SpawnRequest, handle,
};
use router_core::pump::{SendWindow, pump_to_frames};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{debug, info};

use super::login::{Login, accept_env, subsystem_command};
use super::output::{self, BoxedRead, Output};
use crate::fdstream::FdStream;
use crate::sys;

/// Stdin traffic from the shim.
pub enum Input {
    Data(Bytes),
    Eof,
}

/// The agent's handle on a running session.
pub struct Session {
    pub input: mpsc::UnboundedSender<Input>,
    stdout_window: SendWindow,
    stderr_window: SendWindow,
    /// Tell the output pump nobody reads stdout / stderr any more.
    stdout_closed: Option<Arc<Notify>>,
    stderr_closed: Option<Arc<Notify>>,
    pgid: Option<Pid>,
    /// The relay task of a TCP session.
    relay: Option<AbortHandle>,
    /// The pty of an `ssh -t` session, for window changes.
    pty: Option<OwnedFd>,
}

/// Sends a session event to the shim.
#[derive(Clone)]
struct Events {
    router: Arc<Router>,
    peer: ContextId,
}

impl Events {
    fn send(&self, ev: SessionEvent) {
        self.router.send(Frame::cbor(
            self.router.header(self.peer, handle::SESSION_EVENT),
            &ev,
        ));
    }
}

impl Session {
    /// Start what `req` asks for. On failure the shim has been told why.
    pub fn start(
        router: &Arc<Router>,
        login: &Login,
        req: SpawnRequest,
        done: mpsc::UnboundedSender<ContextId>,
    ) -> Result<Session, String> {
        let events = Events {
            router: router.clone(),
            peer: req.peer,
        };
        let result = match &req.command {
            RemoteCommand::TcpConnect { host, port } => Ok(Session::start_tcp(
                events.clone(),
                host.clone(),
                *port,
                done,
            )),
            _ => Session::start_command(events.clone(), login, &req, done),
        };
        if let Err(e) = &result {
            events.send(SessionEvent::Error(e.clone()));
        }
        result
    }

    fn start_command(
        events: Events,
        login: &Login,
        req: &SpawnRequest,
        done: mpsc::UnboundedSender<ContextId>,
    ) -> Result<Session, String> {
        let peer = req.peer;
        let mut cmd = command_for(login, req)?;
        let (child, stdin, stdout, stderr, pty) = match req.pty {
            None => {
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
                let mut child = spawn(&mut cmd, login)?;
                let stdin = child
                    .stdin
                    .take()
                    .map(|p| Box::new(p) as Box<dyn AsyncWrite + Unpin + Send>);
                let stdout = child.stdout.take().map(|p| Box::new(p) as BoxedRead);
                let stderr = child.stderr.take().map(|p| Box::new(p) as BoxedRead);
                (child, stdin, stdout, stderr, None)
            }
            Some(size) => {
                let (master, slave) = open_pty(size)?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
                cmd.stdin(Stdio::from(dup(&slave)?))
                    .stdout(Stdio::from(dup(&slave)?))
                    .stderr(Stdio::from(slave));
                sys::controlling_tty_on_stderr(&mut cmd);
                let child = spawn(&mut cmd, login)?;
                drop(cmd); // our copies of the slave: EOF comes when the command's close
                let reader = FdStream::new(dup(&master)?).map_err(|e| format!("pty: {e}"))?;
                let writer = FdStream::new(dup(&master)?).map_err(|e| format!("pty: {e}"))?;
                (
                    child,
                    Some(Box::new(writer) as Box<dyn AsyncWrite + Unpin + Send>),
                    Some(Box::new(reader) as BoxedRead),
                    None,
                    Some(master),
                )
            }
        };
        let pgid = child.id().map(|p| Pid::from_raw(p as i32));
        info!(
            "session {peer}: started {:?} as pid {:?}",
            req.command,
            child.id()
        );

        let input = spawn_stdin_writer(stdin, events.clone());
        let stdout_window = SendWindow::new(SESSION_WINDOW);
        let stderr_window = SendWindow::new(SESSION_WINDOW);
        let (stdout_closed, stderr_closed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let router = &events.router;
        let outputs = tokio::spawn(output::pump(
            router.clone(),
            peer,
            Output::new(
                stdout,
                stdout_window.clone(),
                router.header(peer, handle::SESSION_STDOUT),
                stdout_closed.clone(),
            ),
            Output::new(
                stderr,
                stderr_window.clone(),
                router.header(peer, handle::SESSION_STDERR),
                stderr_closed.clone(),
            ),
        ));
        let session = Session {
            input,
            stdout_window,
            stderr_window,
            stdout_closed: Some(stdout_closed),
            stderr_closed: Some(stderr_closed),
            pgid,
            relay: None,
            pty,
        };
        tokio::spawn(report_exit(
            events,
            child,
            outputs,
            session.pty.is_some(),
            done,
        ));
        Ok(session)
    }

    /// A session whose far end is a TCP connection made from here.
    fn start_tcp(
        events: Events,
        host: String,
        port: u16,
        done: mpsc::UnboundedSender<ContextId>,
    ) -> Session {
        let peer = events.peer;
        let (input, input_rx) = mpsc::unbounded_channel::<Input>();
        let stdout_window = SendWindow::new(SESSION_WINDOW);
        let window = stdout_window.clone();
        let relay = tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            let sock = match tokio::time::timeout(Duration::from_secs(30), connect).await {
                Ok(Ok(sock)) => sock,
                Ok(Err(e)) => {
                    events.send(SessionEvent::Error(format!(
                        "connect to host {host} port {port}: {e}"
                    )));
                    let _ = done.send(peer);
                    return;
                }
                Err(_) => {
                    events.send(SessionEvent::Error(format!(
                        "connect to host {host} port {port}: timed out"
                    )));
                    let _ = done.send(peer);
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            info!("session {peer}: connected to {host}:{port}");
            let (read, write) = sock.into_split();
            let writer = write_stdin(Some(Box::new(write)), input_rx, events.clone());
            let header = events.router.header(peer, handle::SESSION_STDOUT);
            let sent = pump_to_frames(read, &window, &events.router, header)
                .await
                .unwrap_or(0);
            debug!("session {peer}: {host}:{port} closed after {sent} bytes");
            events.send(SessionEvent::Eof(OutputStream::Stdout));
            events.send(SessionEvent::Exit(ExitStatus::Code(0)));
            writer.abort();
            let _ = done.send(peer);
        });
        Session {
            input,
            stdout_window,
            stderr_window: SendWindow::new(SESSION_WINDOW),
            stdout_closed: None,
            stderr_closed: None,
            pgid: None,
            relay: Some(relay.abort_handle()),
            pty: None,
        }
    }

    pub fn credit(&self, stream: OutputStream, bytes: u32) {
        match stream {
            OutputStream::Stdout => self.stdout_window.grant(bytes),
            OutputStream::Stderr => self.stderr_window.grant(bytes),
        }
    }

    /// Nobody reads `stream` any more: drop our end so the command sees EPIPE.
    pub fn output_closed(&self, stream: OutputStream) {
        let closed = match stream {
            OutputStream::Stdout => &self.stdout_closed,
            OutputStream::Stderr => &self.stderr_closed,
        };
        if let Some(c) = closed {
            c.notify_one();
        }
    }

    /// The client's window changed size.
    pub fn window_change(&self, size: PtyRequest) {
        if let Some(master) = &self.pty {
            let _ = sys::set_window_size(master.as_fd(), size.cols, size.rows);
        }
    }

    /// Signal the command's whole process group.
    pub fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            debug!("signalling process group {pgid} with {sig}");
            let _ = killpg(pgid, sig);
        }
    }

    /// The shim is gone or the agent is exiting: end the command for good.
    pub fn kill(&self) {
        self.signal(Signal::SIGHUP);
        self.signal(Signal::SIGKILL);
        if let Some(relay) = &self.relay {
            relay.abort();
        }
        self.stdout_window.close();
        self.stderr_window.close();
    }
}

fn spawn(cmd: &mut Command, login: &Login) -> Result<Child, String> {
    cmd.spawn()
        .map_err(|e| format!("cannot run {}: {e}", login.shell.display()))
}

fn open_pty(size: PtyRequest) -> Result<(OwnedFd, OwnedFd), String> {
    let ws = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty =
        nix::pty::openpty(Some(&ws), None).map_err(|e| format!("cannot allocate a pty: {e}"))?;
    Ok((pty.master, pty.slave))
}

/// Feed the command's stdin from the shim's frames, granting credit back as
/// bytes are written (or dropped, once the command stopped reading).
fn spawn_stdin_writer(
    writer: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    events: Events,
) -> mpsc::UnboundedSender<Input> {
    let (input, rx) = mpsc::unbounded_channel();
    write_stdin(writer, rx, events);
    input
}

fn write_stdin(
    mut writer: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    mut rx: mpsc::UnboundedReceiver<Input>,
    events: Events,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            match item {
                Input::Data(data) => {
                    if let Some(w) = writer.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        writer = None;
                    }
                    events.send(SessionEvent::StdinCredit(data.len() as u32));
                }
                Input::Eof => {
                    if let Some(mut w) = writer.take() {
                        let _ = w.shutdown().await;
                    }
                }
            }
        }
    })
}

/// Like sshd, report the exit status only after the output has been sent.
async fn report_exit(
    events: Events,
    mut child: Child,
    outputs: JoinHandle<(u64, u64)>,
    pty: bool,
    done: mpsc::UnboundedSender<ContextId>,
) {
    let peer = events.peer;
    let (out, err, status) = if pty {
        // On a pty a background process may hold the terminal forever: once
        // the command exits, take what is left and stop.
        let status = child.wait().await;
        let abort = outputs.abort_handle();
        let (out, err) = match tokio::time::timeout(Duration::from_secs(5), outputs).await {
            Ok(r) => r.unwrap_or((0, 0)),
            Err(_) => {
                abort.abort();
                events.send(SessionEvent::Eof(OutputStream::Stdout));
                (0, 0)
            }
        };
        (out, err, status)
    } else {
        let (out, err) = outputs.await.unwrap_or((0, 0));
        (out, err, child.wait().await)
    };
    let status = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(sig)) => ExitStatus::Signal {
                signal: sig,
                core_dumped: st.core_dumped(),
            },
            (None, None) => ExitStatus::Code(255),
        },
        Err(e) => {
            events.send(SessionEvent::Error(format!(
                "waiting for the command failed: {e}"
            )));
            let _ = done.send(peer);
            return;
        }
    };
    info!("session {peer}: {status:?}, {out} bytes stdout, {err} bytes stderr");
    events.send(SessionEvent::Exit(status));
    let _ = done.send(peer);
}

/// The command the way sshd builds it: `$SHELL -c "<command>"` (or a login
/// shell) in the home directory, with a clean login environment. Stdio and
/// the process group are set by the caller.
fn command_for(login: &Login, req: &SpawnRequest) -> Result<Command, String> {
    let mut cmd = Command::new(&login.shell);
    match &req.command {
        RemoteCommand::Exec(line) => {
            cmd.arg0(login.shell_name()).arg("-c").arg(line);
        }
        RemoteCommand::Subsystem(name) => {
            let line = subsystem_command(name).ok_or_else(|| {
                format!("subsystem request failed: no {name:?} subsystem (sftp-server not found)")
            })?;
            cmd.arg0(login.shell_name()).arg("-c").arg(line);
        }
        RemoteCommand::Shell => {
            cmd.arg0(format!("-{}", login.shell_name()));
        }
        RemoteCommand::TcpConnect { .. } => return Err("a TCP session is not a command".into()),
    }
    let home = if login.home.is_dir() {
        login.home.clone()
    } else {
        "/".into()
    };
    cmd.current_dir(home)
        .env_clear()
        .envs(login.base_env())
        .envs(
            req.env
                .iter()
                .filter(|(k, _)| accept_env(k, req.pty.is_some()))
                .cloned(),
        )
        .kill_on_drop(false);
    Ok(cmd)
}
