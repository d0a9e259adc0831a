//! Starting what a session asks for: a command the way sshd runs it (on
//! pipes, or on a pty for `ssh -t`), or a TCP connection for a tunnel.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use router::session::{PtyRequest, RemoteCommand, SpawnRequest};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{Child, Command};

use super::login::{Login, accept_env, subsystem_command};
use crate::fdstream::FdStream;
use crate::sys;

pub type BoxedRead = Box<dyn AsyncRead + Unpin + Send>;
pub type BoxedWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// How long a tunnel's TCP connection may take.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a session could not start; the client is told.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot run {shell}: {source}")]
    Shell {
        shell: String,
        source: std::io::Error,
    },
    #[error("subsystem request failed: no {0:?} subsystem (sftp-server not found)")]
    NoSubsystem(String),
    #[error("cannot allocate a pty: {0}")]
    Pty(nix::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("connect to host {host} port {port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("connect to {path}: {reason}")]
    ConnectPath { path: String, reason: String },
    #[error("no accepted connection waits under that token (taken, or too late)")]
    NotAccepted,
    #[error("cannot make the forwarded ssh-agent socket: {0}")]
    AgentSocket(String),
    #[error("a connection or a listener is not a command")]
    NotACommand,
}

/// A started session's ends: what to write its input to, what to read its
/// output from, and the process behind it (none for a TCP connection).
pub struct Started {
    pub stdin: Option<BoxedWrite>,
    pub stdout: Option<BoxedRead>,
    pub stderr: Option<BoxedRead>,
    pub child: Option<Child>,
    /// The pty of an `ssh -t` session, for window changes.
    pub pty: Option<OwnedFd>,
}

/// Run the command of `req` for `login`, with `extra_env` (set by the
/// agent, as `SSH_AUTH_SOCK` for `ssh -A`).
pub fn spawn(
    login: &Login,
    req: &SpawnRequest,
    extra_env: &[(String, String)],
) -> Result<Started, SpawnError> {
    let mut cmd = command_for(login, req)?;
    cmd.envs(extra_env.iter().cloned());
    let spawned = |cmd: &mut Command| {
        cmd.spawn().map_err(|source| SpawnError::Shell {
            shell: login.shell.display().to_string(),
            source,
        })
    };
    match req.pty {
        None => {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            let mut child = spawned(&mut cmd)?;
            Ok(Started {
                stdin: child.stdin.take().map(|p| Box::new(p) as BoxedWrite),
                stdout: child.stdout.take().map(|p| Box::new(p) as BoxedRead),
                stderr: child.stderr.take().map(|p| Box::new(p) as BoxedRead),
                child: Some(child),
                pty: None,
            })
        }
        Some(size) => {
            let (master, slave) = open_pty(size)?;
            let dup = |fd: &OwnedFd| {
                fd.try_clone().map_err(|source| SpawnError::Io {
                    what: "dup",
                    source,
                })
            };
            cmd.stdin(Stdio::from(dup(&slave)?))
                .stdout(Stdio::from(dup(&slave)?))
                .stderr(Stdio::from(slave));
            sys::controlling_tty_on_stderr(&mut cmd);
            let child = spawned(&mut cmd)?;
            drop(cmd); // our copies of the slave: EOF comes when the command's close
            let pty_io = |fd| {
                FdStream::new(fd).map_err(|source| SpawnError::Io {
                    what: "pty",
                    source,
                })
            };
            let reader = pty_io(dup(&master)?)?;
            let writer = pty_io(dup(&master)?)?;
            Ok(Started {
                stdin: Some(Box::new(writer)),
                stdout: Some(Box::new(reader)),
                stderr: None,
                child: Some(child),
                pty: Some(master),
            })
        }
    }
}

/// A TCP connection from here to `host:port`, as a session's stdio.
pub async fn connect(host: &str, port: u16) -> Result<Started, SpawnError> {
    let refused = |reason: String| SpawnError::Connect {
        host: host.to_string(),
        port,
        reason,
    };
    let sock = tokio::time::timeout(
        TCP_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| refused("timed out".into()))?
    .map_err(|e| refused(strerror(&e)))?;
    let _ = sock.set_nodelay(true);
    let (read, write) = sock.into_split();
    Ok(Started {
        stdin: Some(Box::new(write)),
        stdout: Some(Box::new(read)),
        stderr: None,
        child: None,
        pty: None,
    })
}

/// An error as strerror words it, without Rust's "(os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

fn open_pty(size: PtyRequest) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let ws = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).map_err(SpawnError::Pty)?;
    Ok((pty.master, pty.slave))
}

/// The command the way sshd builds it: `$SHELL -c "<command>"` (or a login
/// shell) in the home directory, with a clean login environment. Stdio and
/// the process group are set by the caller.
fn command_for(login: &Login, req: &SpawnRequest) -> Result<Command, SpawnError> {
    let mut cmd = Command::new(&login.shell);
    match &req.command {
        RemoteCommand::Exec(line) => {
            use std::os::unix::ffi::OsStrExt;
            let line = std::ffi::OsStr::from_bytes(line);
            cmd.arg0(login.shell_name()).arg("-c").arg(line);
        }
        RemoteCommand::Subsystem(name) => {
            let line =
                subsystem_command(name).ok_or_else(|| SpawnError::NoSubsystem(name.clone()))?;
            cmd.arg0(login.shell_name()).arg("-c").arg(line);
        }
        RemoteCommand::Shell => {
            cmd.arg0(format!("-{}", login.shell_name()));
        }
        _ => return Err(SpawnError::NotACommand),
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
