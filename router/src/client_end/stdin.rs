//! The client end's stdin task: reads stdin into data frames as the
//! machine's credit and the pacer ([`StdinPacer`](proto::session::StdinPacer))
//! allow, and widens the window as the pacer finds the path.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use crate::pump::BulkSender;
use crate::session_link::SessionLink;
use proto::session::{
    ClientSession, DATA_CHUNK, MAX_SESSION_WINDOW, MIN_FRAME_COST, StdinPacer, ToCommand,
    frame_cost,
};

/// Told how many bytes of stdin went out (for accounting).
pub type StdinCounter = Arc<dyn Fn(usize) + Send + Sync>;

/// A stdin this end reads.
pub(super) type Stdin = Box<dyn AsyncRead + Send + Sync + Unpin>;

/// The machine, shared by the driver and its stdin task.
pub(super) struct Shared {
    pub(super) session: Mutex<ClientSession>,
    /// The machine took a message (credit, or the session's end).
    pub(super) changed: Notify,
    /// The round trip to the command end, once the output tuners timed it:
    /// stdin's pacer starts from it.
    pub(super) rtt: OnceLock<Duration>,
    /// How much of stdin to put in flight. Locked after `session`, never
    /// before it.
    pub(super) pacer: Mutex<StdinPacer>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, ClientSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn pacer(&self) -> MutexGuard<'_, StdinPacer> {
        self.pacer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Read `reader` into data frames on `link` as the machine's stdin credit
/// and the pacer allow; its end of file (or a read error, as in OpenSSH)
/// closes the command's stdin, once, if the session is not over.
pub(super) async fn pump_stdin(
    shared: Arc<Shared>,
    link: SessionLink,
    mut reader: Stdin,
    counter: Option<StdinCounter>,
) {
    let mut sender = BulkSender::new();
    let mut buf = BytesMut::new();
    let mut lanes = link.router().lanes_toward(link.remote());
    let mut wanted_lanes = false;
    loop {
        let room = loop {
            let changed = shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let paced = {
                let session = shared.lock();
                if session.stdin_over() {
                    return;
                }
                let granted = session.stdin_sendable(DATA_CHUNK);
                let (grant_window, in_flight) = session.stdin_window();
                let mut pacer = shared.pacer();
                pacer.set_granted(grant_window);
                let room = pacer.sendable(granted, in_flight);
                if room >= MIN_FRAME_COST as usize {
                    match pacer.ready_at(Instant::now()) {
                        None => break room,
                        Some(at) => Some(at),
                    }
                } else {
                    // Only the pacer's own window being the limit tells it
                    // anything (the grant follows what it asks).
                    if pacer.window().saturating_sub(in_flight) <= granted as u64 {
                        pacer.held_back();
                    }
                    None
                }
            };
            if let Some(at) = paced {
                // Ahead of the pace on a long path: spread over the round
                // trip, not queued at its bottleneck in front of every
                // other session of the hop.
                sender.release();
                tokio::time::sleep_until(at.into()).await;
                continue;
            }
            if !std::mem::replace(&mut wanted_lanes, true) {
                // Held back once: the SSH channel on the way may be the
                // limit too, if the path is long ([`crate::Router::want_lanes`]).
                link.router().want_lanes(link.remote());
            }
            widen_stdin(&shared, &link, &mut lanes).await;
            sender.release();
            changed.await;
        };
        buf.reserve(room);
        let read = sender
            .next(reader.read_buf(&mut (&mut buf).limit(room)))
            .await;
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            // At most what the machine allowed; false once the session ended.
            let mut session = shared.lock();
            if !session.stdin_sent(n) {
                return;
            }
            let cost = frame_cost(n);
            shared.pacer().sent(u64::from(cost), Instant::now());
        }
        if let Some(counter) = &counter {
            counter(n);
        }
        let stdin = ToCommand::Stdin(buf.split().freeze());
        link.send_bulk(&mut sender, link.command_frame(&stdin))
            .await;
    }
    sender.release();
    let eof = shared.lock().stdin_eof();
    if let Some(eof) = eof {
        link.to_command(&ToCommand::Control(eof)).await;
    }
}

/// Stdin waits for its window: tell the pacer of the round trip measured
/// and of lanes that joined, and once it is held back on a long path, ask
/// the command end for all the room a stream may have
/// ([`MAX_SESSION_WINDOW`]: slow start doubles the pacer's window per
/// round trip, and a grant that followed it would lag by one; the pacer
/// bounds what is in flight).
async fn widen_stdin(shared: &Shared, link: &SessionLink, lanes: &mut usize) {
    {
        let mut pacer = shared.pacer();
        if let Some(rtt) = shared.rtt.get() {
            pacer.measured(*rtt);
        }
        // On loopback and LANs nothing grows: no more work on a hot path.
        if !pacer.tuned() {
            return;
        }
    }
    let router = link.router();
    let now_lanes = router.lanes_toward(link.remote());
    let ask = {
        let mut session = shared.lock();
        let mut pacer = shared.pacer();
        if now_lanes != std::mem::replace(lanes, now_lanes) {
            pacer.path_changed();
        }
        tracing::trace!(
            "stdin pacer: window {} slow start {} base {:?}",
            pacer.window(),
            pacer.in_slow_start(),
            pacer.base_rtt()
        );
        let (window, _) = session.stdin_window();
        if !pacer.wants_room(window) {
            return;
        }
        let to = u64::from(MAX_SESSION_WINDOW);
        session
            .ask_stdin_window(to)
            .inspect(|_| tracing::debug!("stdin window {window} -> {to} bytes asked"))
    };
    if let Some(ask) = ask {
        link.to_command(&ToCommand::Control(ask)).await;
    }
}
