//! One session on the agent: a command run as sshd runs it, its stdio pumped
//! under flow control, its exit reported last.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use router_core::Router;
use router_core::frame::Frame;
use router_core::message::{
    ContextId, ExitStatus, OutputStream, RemoteCommand, SESSION_WINDOW, SessionEvent, SpawnRequest,
    handle,
};
use router_core::pump::{SendWindow, pump_to_frames};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, info};

use super::login::{Login, accept_env, subsystem_command};

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
    stdout_pump: Option<AbortHandle>,
    stderr_pump: Option<AbortHandle>,
    pgid: Option<Pid>,
    /// The relay task of a TCP session.
    relay: Option<AbortHandle>,
}

impl Session {
    /// Start the command for `req`. On failure the shim has been told why.
    pub fn start(
        router: &Arc<Router>,
        login: &Login,
        req: SpawnRequest,
        done: mpsc::UnboundedSender<ContextId>,
    ) -> Result<Session, String> {
        let peer = req.peer;
        if let RemoteCommand::TcpConnect { host, port } = req.command {
            return Ok(Session::start_tcp(router, peer, host, port, done));
        }
        let event = {
            let router = router.clone();
            move |ev: SessionEvent| {
                router.send(Frame::cbor(router.header(peer, handle::SESSION_EVENT), &ev))
            }
        };
        let mut cmd = match command_for(login, &req) {
            Ok(c) => c,
            Err(e) => {
                event(SessionEvent::Error(e.clone()));
                return Err(e);
            }
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot run {}: {e}", login.shell.display());
                event(SessionEvent::Error(msg.clone()));
                return Err(msg);
            }
        };
        let pgid = child.id().map(|p| Pid::from_raw(p as i32));
        info!(
            "session {peer}: started {:?} as pid {:?}",
            req.command,
            child.id()
        );

        let (input, mut input_rx) = mpsc::unbounded_channel::<Input>();
        let mut stdin = child.stdin.take();
        let credit = event.clone();
        tokio::spawn(async move {
            while let Some(item) = input_rx.recv().await {
                match item {
                    Input::Data(data) => {
                        // If the command closed its stdin, discard the
                        // rest but keep granting credit: the shim is never stuck.
                        if let Some(pipe) = stdin.as_mut()
                            && pipe.write_all(&data).await.is_err()
                        {
                            stdin = None;
                        }
                        credit(SessionEvent::StdinCredit(data.len() as u32));
                    }
                    Input::Eof => stdin = None,
                }
            }
        });

        let stdout_window = SendWindow::new(SESSION_WINDOW);
        let stderr_window = SendWindow::new(SESSION_WINDOW);
        let spawn_pump = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                          window: &SendWindow,
                          stream| {
            let router = router.clone();
            let window = window.clone();
            let eof = event.clone();
            let h = match stream {
                OutputStream::Stdout => handle::SESSION_STDOUT,
                OutputStream::Stderr => handle::SESSION_STDERR,
            };
            tokio::spawn(async move {
                let sent = match pipe {
                    Some(p) => pump_to_frames(p, &window, &router, router.header(peer, h))
                        .await
                        .unwrap_or(0),
                    None => 0,
                };
                eof(SessionEvent::Eof(stream));
                sent
            })
        };
        let stdout_task = spawn_pump(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            &stdout_window,
            OutputStream::Stdout,
        );
        let stderr_task = spawn_pump(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            &stderr_window,
            OutputStream::Stderr,
        );
        let stdout_pump = stdout_task.abort_handle();
        let stderr_pump = stderr_task.abort_handle();

        tokio::spawn(async move {
            // Like sshd, report the exit only after all output has been sent.
            let out = stdout_task.await.unwrap_or(0);
            let err = stderr_task.await.unwrap_or(0);
            let status = match child.wait().await {
                Ok(st) => match (st.code(), st.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(sig)) => ExitStatus::Signal {
                        signal: sig,
                        core_dumped: st.core_dumped(),
                    },
                    (None, None) => ExitStatus::Code(255),
                },
                Err(e) => {
                    event(SessionEvent::Error(format!(
                        "waiting for the command failed: {e}"
                    )));
                    let _ = done.send(peer);
                    return;
                }
            };
            info!("session {peer}: {status:?}, {out} bytes stdout, {err} bytes stderr");
            event(SessionEvent::Exit(status));
            let _ = done.send(peer);
        });

        Ok(Session {
            input,
            stdout_window,
            stderr_window,
            stdout_pump: Some(stdout_pump),
            stderr_pump: Some(stderr_pump),
            pgid,
            relay: None,
        })
    }

    /// A session whose far end is a TCP connection made from here.
    fn start_tcp(
        router: &Arc<Router>,
        peer: ContextId,
        host: String,
        port: u16,
        done: mpsc::UnboundedSender<ContextId>,
    ) -> Session {
        let (input, mut input_rx) = mpsc::unbounded_channel::<Input>();
        let stdout_window = SendWindow::new(SESSION_WINDOW);
        let window = stdout_window.clone();
        let router = router.clone();
        let relay = tokio::spawn(async move {
            let event = |ev: SessionEvent| {
                router.send(Frame::cbor(router.header(peer, handle::SESSION_EVENT), &ev))
            };
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            let sock = match tokio::time::timeout(std::time::Duration::from_secs(30), connect).await
            {
                Ok(Ok(sock)) => sock,
                Ok(Err(e)) => {
                    event(SessionEvent::Error(format!(
                        "connect to host {host} port {port}: {e}"
                    )));
                    let _ = done.send(peer);
                    return;
                }
                Err(_) => {
                    event(SessionEvent::Error(format!(
                        "connect to host {host} port {port}: timed out"
                    )));
                    let _ = done.send(peer);
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            info!("session {peer}: connected to {host}:{port}");
            let (read, mut write) = sock.into_split();
            let writer_router = router.clone();
            let writer = tokio::spawn(async move {
                let mut open = true;
                while let Some(item) = input_rx.recv().await {
                    match item {
                        Input::Data(data) => {
                            if open && write.write_all(&data).await.is_err() {
                                open = false;
                            }
                            writer_router.send(Frame::cbor(
                                writer_router.header(peer, handle::SESSION_EVENT),
                                &SessionEvent::StdinCredit(data.len() as u32),
                            ));
                        }
                        Input::Eof => {
                            let _ = write.shutdown().await;
                            open = false;
                        }
                    }
                }
            });
            let header = router.header(peer, handle::SESSION_STDOUT);
            let sent = pump_to_frames(read, &window, &router, header)
                .await
                .unwrap_or(0);
            debug!("session {peer}: {host}:{port} closed after {sent} bytes");
            event(SessionEvent::Eof(OutputStream::Stdout));
            event(SessionEvent::Exit(ExitStatus::Code(0)));
            writer.abort();
            let _ = done.send(peer);
        });
        Session {
            input,
            stdout_window,
            stderr_window: SendWindow::new(SESSION_WINDOW),
            stdout_pump: None,
            stderr_pump: None,
            pgid: None,
            relay: Some(relay.abort_handle()),
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
        let pump = match stream {
            OutputStream::Stdout => &self.stdout_pump,
            OutputStream::Stderr => &self.stderr_pump,
        };
        if let Some(p) = pump {
            p.abort();
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

/// Build the command the way sshd does: `$SHELL -c "<command>"` in the home
/// directory, with a clean login environment.
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
                .filter(|(k, _)| accept_env(k, req.tty))
                .cloned(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    Ok(cmd)
}
