//! Launching COMMAND: the shim directory, the inherited control socket and
//! the environment that leads every `ssh` it starts back to us.

use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use router::Router;
use shims::env;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error};

use super::accept;
use super::connector::Connector;
use crate::cli::{Cli, HostArgs};
use crate::sys;

/// Exit status when mitogen-fakessh fails before the command ran.
pub const EXIT_FAILURE: i32 = 255;

/// Why COMMAND could not be started.
#[derive(Debug, thiserror::Error)]
enum LaunchError {
    #[error("cannot find our own executable: {0}")]
    OwnExecutable(std::io::Error),
    #[error("cannot create {what}: {source}")]
    Create {
        what: String,
        source: std::io::Error,
    },
    #[error("PATH: {0}")]
    Path(std::env::JoinPathsError),
    #[error("cannot create the control socket: {0}")]
    ControlSocket(nix::Error),
    #[error("cannot listen on {}: {source}", .path.display())]
    Listen {
        path: std::path::PathBuf,
        source: nix::Error,
    },
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signals(std::io::Error),
    #[error("waiting for the command: {0}")]
    Wait(std::io::Error),
}

fn create(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Create { what, source }
}

/// Run the wrapped command; returns the exit status to use.
/// `fd_limit`: the descriptor limit to give COMMAND (the host raised its
/// own).
pub async fn run(
    cli: &Cli,
    args: &HostArgs,
    router: Arc<Router>,
    connector: Arc<Connector>,
    fd_limit: Option<u64>,
) -> i32 {
    // With --to, connect before the command runs: a broken chain fails fast
    // with 255 instead of surfacing as a confusing rsync error.
    if let Some(chain) = connector.routing.fixed_default().cloned()
        && let Err(e) = connector.connect(&chain).await
    {
        error!("{e}");
        return EXIT_FAILURE;
    }
    match launch(cli, args, router, connector, fd_limit).await {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            EXIT_FAILURE
        }
    }
}

async fn launch(
    cli: &Cli,
    args: &HostArgs,
    router: Arc<Router>,
    connector: Arc<Connector>,
    fd_limit: Option<u64>,
) -> Result<i32, LaunchError> {
    let exe = std::env::current_exe().map_err(LaunchError::OwnExecutable)?;
    // 0755: a descendant of COMMAND that changed user still runs the shims
    // (and is then refused by the host unless it is us or root).
    let shim_dir = tempfile::Builder::new()
        .prefix("mitogen-fakessh.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .tempdir()
        .map_err(create("the shim directory"))?;
    // Our own copy (a hard link when possible): if the installed binary is
    // replaced while COMMAND runs, a symlink would dangle for a moment and
    // execvp would silently fall through to the real ssh on PATH.
    let ssh_shim = shim_dir.path().join("ssh");
    if std::fs::hard_link(&exe, &ssh_shim).is_err() {
        std::fs::copy(&exe, &ssh_shim).map_err(create("the ssh shim"))?;
    }
    for name in ["scp", "sftp"] {
        std::fs::hard_link(&ssh_shim, shim_dir.path().join(name))
            .map_err(create(format!("the {name} shim")))?;
    }
    // Real tools, resolved before PATH points at the shims.
    let real = |tool: &str| {
        which::which(tool)
            .map(|p| p.into_os_string())
            .unwrap_or_default()
    };
    let (real_scp, real_sftp) = (real("scp"), real("sftp"));
    let path = match std::env::var_os("PATH") {
        Some(old) => {
            let mut dirs = vec![shim_dir.path().to_path_buf()];
            dirs.extend(std::env::split_paths(&old));
            std::env::join_paths(dirs).map_err(LaunchError::Path)?
        }
        None => shim_dir.path().as_os_str().to_owned(),
    };

    let (host_end, child_end) = sys::seqpacket_pair().map_err(LaunchError::ControlSocket)?;
    sys::set_inheritable(child_end.as_fd()).map_err(LaunchError::ControlSocket)?;

    // The fallback for shims whose inherited socket was closed on the way.
    // It sits in a 0700 directory of its own (the shims themselves must stay
    // executable for a descendant that changed user), and the host also
    // checks who connects.
    let private = shim_dir.path().join("private");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(create(private.display().to_string()))?;
    }
    let control_path = private.join("control");
    let listener =
        sys::seqpacket_listener(&control_path).map_err(|source| LaunchError::Listen {
            path: control_path.clone(),
            source,
        })?;

    let program = &cli.command[0];
    let mut command = tokio::process::Command::new(program);
    command
        .args(&cli.command[1..])
        .env("PATH", &path)
        .env(env::CONTROL_FD, child_end.as_raw_fd().to_string())
        .env(env::CONTROL_PATH, &control_path)
        .env(
            env::CONTROL_UID,
            nix::unistd::geteuid().as_raw().to_string(),
        )
        .env(env::SHIM_SSH, shim_dir.path().join("ssh"))
        .env(env::REAL_SCP, &real_scp)
        .env(env::REAL_SFTP, &real_sftp)
        .kill_on_drop(false);
    if let Some(soft) = fd_limit {
        sys::keep_fd_limit(&mut command, soft);
    }
    // The shims resolve SendEnv, SetEnv and `ssh -G` from the same file.
    if let Some(file) = &args.ssh_config {
        command.env(
            env::SSH_CONFIG,
            std::path::absolute(file).unwrap_or(file.clone()),
        );
    }
    let mut child = command.spawn().map_err(|source| {
        let shown = Path::new(program).display().to_string();
        match source.kind() {
            std::io::ErrorKind::NotFound => LaunchError::NotFound(shown),
            _ => LaunchError::Spawn {
                program: shown,
                source,
            },
        }
    })?;
    // Only the command and its descendants hold the other end now.
    drop(child_end);
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    // The accept loops own every session; dropping them ends what is left.
    let mut inherited = tokio::spawn(accept::accept_loop(
        host_end,
        router.clone(),
        connector.clone(),
    ));
    let mut fallback = tokio::task::JoinSet::new();
    fallback.spawn(accept::listen_loop(
        listener,
        router,
        connector.clone(),
        accept::Peers { root_too: true },
        None,
    ));

    let mut signals = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        signals.push((kind, signal(kind).map_err(LaunchError::Signals)?));
    }
    let status = loop {
        let [(_, int), (_, term), (_, hup)] = &mut signals[..] else {
            unreachable!()
        };
        // Signals for us are passed to the command; we exit when it does.
        let forwarded = tokio::select! {
            st = child.wait() => break st.map_err(LaunchError::Wait)?,
            _ = int.recv() => Signal::SIGINT,
            _ = term.recv() => Signal::SIGTERM,
            _ = hup.recv() => Signal::SIGHUP,
        };
        if let Some(pid) = pid {
            debug!("forwarding {forwarded} to the command");
            let _ = kill(pid, forwarded);
        }
    };
    // A session COMMAND left behind (a backgrounded ssh, unison's, whose
    // parent did not wait) finishes as it would with OpenSSH: wait until
    // every process holding the control socket is gone and no session is
    // open, for --grace at most (or until a signal says stop).
    let settled = async {
        let _ = (&mut inherited).await;
        connector.stats.all_sessions_ended().await;
    };
    let [(_, int), (_, term), (_, hup)] = &mut signals[..] else {
        unreachable!()
    };
    tokio::select! {
        _ = tokio::time::timeout(cli.grace, settled) => {}
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    if connector.stats.open_sessions() > 0 {
        debug!(
            "ending {} session(s) still open after COMMAND exited",
            connector.stats.open_sessions()
        );
    }
    inherited.abort();
    drop(fallback);
    drop(shim_dir);
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_FAILURE,
    };
    if !args.quiet
        && let Some(hint) = failure_hint(program, code)
    {
        crate::logging::stderr_line(&format!("mitogen-fakessh: hint: {hint}"));
    }
    Ok(code)
}

/// What the classic client failures usually mean here.
fn failure_hint(program: &std::ffi::OsStr, code: i32) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    match (name, code) {
        ("rsync", 12) => Some(
            "rsync exit 12: its remote side ended early; the lines above say which hop failed. \
             For root, use a sudo hop (--to ...,sudo:root) instead of --rsync-path='sudo rsync'",
        ),
        ("rsync", 2) => Some(
            "rsync exit 2 (protocol incompatibility): something printed on the remote stdout, \
             usually a shell rc file (.bashrc) echoing text for non-interactive shells",
        ),
        ("rsync", 255) | ("scp", 255) | ("sftp", 255) | ("git", 128) => Some(
            "the connection failed; run with -v to see each hop connect, or check the error above",
        ),
        _ => None,
    }
}
