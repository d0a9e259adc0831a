//! The daemon itself: the host's router and connector without a COMMAND,
//! serving shims and control requests on its socket (its own user only),
//! ending idle contexts, and stopping on request or signal.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::place::Place;
use super::report::DaemonStatus;
use crate::host::accept::{ControlCall, Peers, listen_loop};
use crate::host::lifetime::{end_all, end_idle};
use crate::host::{Connector, Prepared};

/// What the daemon knows about itself.
pub struct Daemon {
    pub place: Place,
    pub idle: Duration,
    /// pid, socket, shims, real scp and sftp, ssh config.
    pub base: DaemonStatus,
}

/// Serve until stopped; then every context is ended and the files removed.
pub async fn serve(prepared: Prepared, listener: OwnedFd, daemon: Daemon) {
    let started = Instant::now();
    let (router, connector) = prepared.connector();
    let (calls, mut requests) = mpsc::channel::<ControlCall>(16);
    let listening = tokio::spawn(listen_loop(
        listener,
        router,
        connector.clone(),
        Peers { root_too: false },
        Some(calls),
    ));
    let mut sweep = tokio::time::interval(
        daemon
            .idle
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
            / 2,
    );
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        warn!("cannot install signal handlers; stopping");
        return stop(&connector, &daemon).await;
    };
    info!(
        "daemon pid {} serving {}",
        std::process::id(),
        daemon.place.socket.display()
    );
    loop {
        tokio::select! {
            Some(call) = requests.recv() => {
                if call.stop {
                    info!("stop requested");
                    stop(&connector, &daemon).await;
                    let _ = call.reply.send(json(&status(&connector, &daemon, started)));
                    // Let the answer leave before the connection goes.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                let _ = call.reply.send(json(&status(&connector, &daemon, started)));
            }
            _ = sweep.tick() => end_idle(&connector, daemon.idle).await,
            _ = term.recv() => { info!("SIGTERM"); stop(&connector, &daemon).await; break }
            _ = int.recv() => { info!("SIGINT"); stop(&connector, &daemon).await; break }
            _ = hup.recv() => { info!("SIGHUP"); stop(&connector, &daemon).await; break }
        }
    }
    listening.abort();
}

/// End every context (agents end their commands), remove the files.
async fn stop(connector: &Connector, daemon: &Daemon) {
    // No new client finds the socket while the contexts end.
    let _ = std::fs::remove_file(&daemon.place.socket);
    end_all(connector).await;
    daemon.place.remove();
}

fn status(connector: &Connector, daemon: &Daemon, started: Instant) -> DaemonStatus {
    DaemonStatus {
        uptime_seconds: started.elapsed().as_secs(),
        contexts: connector.stats.snapshot(),
        ..daemon.base.clone()
    }
}

fn json(status: &DaemonStatus) -> String {
    serde_json::to_string(status)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}
