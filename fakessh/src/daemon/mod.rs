//! Persistent contexts: `mitogen-fakessh start` forks a daemon (a host
//! without a COMMAND) that keeps its contexts across commands, and prints
//! shell code that points the shell's ssh, scp and sftp at it; `exec`,
//! `status` and `stop` talk to it.
//!
//! - [`place`]: where its socket, shims and log live, and their checks;
//! - [`serve`]: the daemon;
//! - [`client`]: asking it for its status, or to stop;
//! - [`eval`]: the shell code;
//! - [`report`]: what it says about itself.

mod client;
mod eval;
mod place;
mod report;
mod serve;

use std::time::Duration;

use crate::cli::{ExecCli, StartCli, StatusCli, StopCli};
use crate::host::{EXIT_FAILURE, StartError};
use client::ClientError;
use place::{Place, PlaceError};
use report::DaemonStatus;

/// Why a daemon command failed.
#[derive(Debug, thiserror::Error)]
enum DaemonError {
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(
        "a daemon is already running at {socket} (pid {pid}); use it (MITOGEN_FAKESSH_SOCK={socket}), or end it with mitogen-fakessh stop"
    )]
    AlreadyRunning { socket: String, pid: u32 },
    #[error("cannot create {what}: {source}")]
    Create {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Listen { path: String, source: nix::Error },
    #[error("cannot start the daemon: {0}")]
    Fork(nix::Error),
    #[error("the daemon did not start; see {0}")]
    NotReady(String),
    #[error(transparent)]
    Unquotable(#[from] eval::Unquotable),
    #[error("{program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

/// Run `what`, printing its error the way the host does.
fn report(what: impl FnOnce() -> Result<i32, DaemonError>) -> i32 {
    match what() {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            EXIT_FAILURE
        }
    }
}

/// `mitogen-fakessh start ...`.
pub fn start(cli: StartCli) -> i32 {
    report(|| start_daemon(cli))
}

fn start_daemon(cli: StartCli) -> Result<i32, DaemonError> {
    let shell = eval::Shell::choose(cli.sh, cli.csh, cli.fish);
    let place = Place::choose(cli.socket.as_deref())?;
    if place.socket.exists() {
        match client::ask(&place.socket, false) {
            Ok(running) => {
                return Err(DaemonError::AlreadyRunning {
                    socket: place.socket.display().to_string(),
                    pid: running.pid,
                });
            }
            // Nobody listens: a dead daemon's socket, replaced.
            Err(_) => place.remove_stale_socket()?,
        }
    }
    let prepared = crate::host::prepare(cli.host.clone())?;
    make_shims(&place)?;
    let listener =
        crate::sys::seqpacket_listener(&place.socket).map_err(|source| DaemonError::Listen {
            path: place.socket.display().to_string(),
            source,
        })?;
    let real = |tool: &str| {
        which::which(tool)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut base = DaemonStatus {
        pid: 0,
        socket: place.socket.display().to_string(),
        bin: place.bin.display().to_string(),
        real_scp: real("scp"),
        real_sftp: real("sftp"),
        ssh_config: prepared.args.ssh_config.as_ref().map(|p| {
            std::path::absolute(p)
                .unwrap_or(p.clone())
                .display()
                .to_string()
        }),
        uptime_seconds: 0,
        idle_timeout_seconds: cli.idle_timeout.as_secs(),
        contexts: Vec::new(),
    };
    // The daemon says it is up through this pipe (or closes it failing).
    let (ready_read, ready_write) = crate::sys::pipe_cloexec().map_err(DaemonError::Fork)?;
    match crate::sys::fork_daemon().map_err(DaemonError::Fork)? {
        crate::sys::Forked::Parent(pid) => {
            drop(ready_write);
            drop(listener);
            if !ready(&ready_read) {
                return Err(DaemonError::NotReady(place.log.display().to_string()));
            }
            base.pid = pid;
            print!("{}", eval::code(&base, shell)?);
            Ok(0)
        }
        crate::sys::Forked::Daemon => {
            drop(ready_read);
            base.pid = std::process::id();
            let _ = std::env::set_current_dir("/");
            if crate::sys::detach_stdio(&place.log).is_err() {
                return Ok(EXIT_FAILURE);
            }
            let runtime = match crate::roles::runtime() {
                Ok(runtime) => runtime,
                Err(_) => return Ok(EXIT_FAILURE),
            };
            let daemon = serve::Daemon {
                place,
                idle: cli.idle_timeout,
                base,
            };
            runtime.block_on(async {
                let _ = nix::unistd::write(&ready_write, b"+");
                drop(ready_write);
                serve::serve(prepared, listener, daemon).await
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
            Ok(0)
        }
    }
}

/// Whether the daemon said it is up within 30 s.
fn ready(pipe: &std::os::fd::OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::from(30_000u16)), Ok(n) if n > 0) {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(nix::unistd::read(pipe, &mut byte), Ok(1))
}

/// The daemon's shims: links to our executable named ssh, scp and sftp.
fn make_shims(place: &Place) -> Result<(), DaemonError> {
    let create = |what: &str| {
        let what = what.to_string();
        move |source| DaemonError::Create { what, source }
    };
    let exe = std::env::current_exe().map_err(create("the shims"))?;
    let _ = std::fs::remove_dir_all(&place.bin);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&place.bin)
            .map_err(create(&place.bin.display().to_string()))?;
    }
    let ssh = place.bin.join("ssh");
    // A copy if a hard link is impossible: a symlink would dangle while
    // the installed binary is replaced.
    if std::fs::hard_link(&exe, &ssh).is_err() {
        std::fs::copy(&exe, &ssh).map_err(create("the ssh shim"))?;
    }
    for name in ["scp", "sftp"] {
        std::fs::hard_link(&ssh, place.bin.join(name)).map_err(create(name))?;
    }
    Ok(())
}

/// `mitogen-fakessh exec -- COMMAND`.
pub fn exec(cli: ExecCli) -> i32 {
    report(|| {
        let socket = place::socket_for_client(cli.daemon.socket.as_deref())?;
        let status = client::ask(&socket, false)?;
        let mut command = std::process::Command::new(&cli.command[0]);
        command.args(&cli.command[1..]);
        point_at(&mut command, &status);
        use std::os::unix::process::CommandExt;
        let source = command.exec();
        Err(DaemonError::Exec {
            program: cli.command[0].to_string_lossy().into_owned(),
            source,
        })
    })
}

/// The environment `start`'s shell code sets, for one command.
fn point_at(command: &mut std::process::Command, status: &DaemonStatus) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![std::path::PathBuf::from(&status.bin)];
    dirs.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        command.env("PATH", joined);
    }
    command
        .env_remove(shims::env::CONTROL_FD)
        .env(shims::env::CONTROL_PATH, &status.socket)
        .env(shims::env::SHIM_SSH, format!("{}/ssh", status.bin))
        .env(shims::env::REAL_SCP, &status.real_scp)
        .env(shims::env::REAL_SFTP, &status.real_sftp);
    if let Some(config) = &status.ssh_config {
        command.env(shims::env::SSH_CONFIG, config);
    }
}

/// `mitogen-fakessh status [--json]`.
pub fn status(cli: StatusCli) -> i32 {
    report(|| {
        let socket = place::socket_for_client(cli.daemon.socket.as_deref())?;
        let status = client::ask(&socket, false)?;
        match cli.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            ),
            false => print!("{}", status.for_people()),
        }
        Ok(0)
    })
}

/// `mitogen-fakessh stop`: stop the daemon, and print the shell code that
/// undoes `start`'s (as `ssh-agent -k`): unset its variables, and take its
/// shims' directory off PATH, so that no later command of that shell looks
/// in a directory that is gone (and that somebody else could re-create).
pub fn stop(cli: StopCli) -> i32 {
    let shell = eval::Shell::choose(cli.sh, cli.csh, cli.fish);
    report(|| {
        let socket = place::socket_for_client(cli.daemon.socket.as_deref())?;
        let socket = std::path::absolute(&socket).unwrap_or(socket);
        let from_env = std::env::var_os(place::SOCKET_ENV)
            .map(|s| std::path::absolute(&s).unwrap_or(s.into()))
            .filter(|s| s.as_os_str() == socket.as_os_str());
        // The shims' directories to take off PATH: this daemon's, and the one
        // the shell's variables name if they point at this daemon.
        let mut bins = vec![format!("{}.bin", socket.display())];
        if from_env.is_some()
            && let Some(ssh) = std::env::var_os(shims::env::SHIM_SSH)
            && let Some(dir) = std::path::Path::new(&ssh).parent()
        {
            bins.push(dir.display().to_string());
        }
        let path = std::env::var("PATH").unwrap_or_default();
        // Made before the daemon is asked: a PATH that cannot be quoted
        // stops nothing.
        let undo = eval::undo(shell, &path, &bins)?;
        let undo_anyway = from_env.is_some() || std::env::var_os(place::SOCKET_ENV).is_none();
        match client::ask(&socket, true) {
            Ok(stopped) => {
                if undo_anyway {
                    print!("{undo}");
                }
                println!("echo mitogen-fakessh daemon pid {} stopped;", stopped.pid);
                Ok(0)
            }
            Err(e) => {
                // The shell still points at this place: undo that anyway.
                if from_env.is_some() {
                    print!("{undo}");
                }
                Err(e.into())
            }
        }
    })
}
