//! The host's end of lanes ([`router::lane_rules`]): if the round trip to
//! an ssh hop's agent, timed once it is attached, is long enough for one
//! SSH channel's window to be the limit, the agent makes the lanes'
//! socket and FIFOs at once; then once a push through it is held back by
//! its window, open more channels on the same
//! connection to the agent's socket (or, where the server forbids that,
//! session channels each running `cat` into one of the agent's FIFOs),
//! and switch the stream to go round them. A hop that only pulls, or runs
//! short commands, never gets lanes (its agent keeps the directory made
//! for them for [`KEEP_MADE`]).
//!
//! It runs in the background: sessions flow on the first channel meanwhile,
//! and a step that fails (a server that allows fewer sessions, no `cat`, a
//! lane that never delivers its token) leaves the stream as it was, with a
//! line at `-v`.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use router::Router;
use router::frame::Frame;
use router::lane_rules::{
    JoinLanes, LanesReply, LanesRequest, MIN_LANES_RTT, TOKEN_LEN, switch_frame,
};
use router::lanes::{LaneWrite, Staged};
use router::message::{ContextId, Handle, handle};
use router::router::RouterEvent;
use router::text::sanitize_line;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::{debug, info};

use super::connect::Connection;
use channels::{Opened, STEP_TIMEOUT, open_lanes};

mod channels;

/// How long the agent may take to join the lanes: longer than it gives
/// them to deliver their token, so its own reason comes back.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the agent keeps the lanes' socket and FIFOs made ahead of a
/// push: after that, the directory goes, and a later push has them made
/// again (a round trip more).
const KEEP_MADE: Duration = Duration::from_secs(30);

/// Time the round trip to `agent` at once; if it is long enough for one
/// channel's window to be the limit, have the agent make the lanes' socket
/// and FIFOs (for [`KEEP_MADE`]), wait until a push through the stream to
/// it is held back by its window (`staged` is the stream's:
/// [`Staged::wanted`]), then add up to `extra` lanes (at most
/// [`MAX_EXTRA_LANES`](router::lane_rules::MAX_EXTRA_LANES)). Until then
/// only a weak hold on `connection` is kept, and the agent's loss ends the
/// wait. Anything that fails leaves one channel, said at `-v`.
pub async fn widen(
    router: Arc<Router>,
    agent: ContextId,
    name: String,
    connection: Weak<Connection>,
    staged: Staged,
    extra: u8,
) {
    if extra == 0 {
        return;
    }
    let mut events = router.subscribe();
    let lost = async {
        loop {
            match events.recv().await {
                Ok(RouterEvent::ContextLost { context, .. }) if context == agent => return,
                Err(broadcast::error::RecvError::Closed) => return,
                _ if !router.has_route(agent) => return,
                _ => {}
            }
        }
    };
    let mut lost = std::pin::pin!(lost);
    // Before any push: the first one held back only opens the channels.
    let made = tokio::select! {
        made = prepare(&router, agent, extra) => made,
        _ = &mut lost => return,
    };
    let Some(made) = settled(&name, made) else {
        return;
    };
    let mut made = Some(made);
    let keep = tokio::time::sleep(KEEP_MADE);
    let mut keep = std::pin::pin!(keep);
    loop {
        tokio::select! {
            _ = staged.wanted() => break,
            _ = &mut keep, if made.is_some() => {
                made = None;
                drop_lanes(&router, agent).await;
            }
            _ = &mut lost => return,
        }
    }
    let made = match made {
        Some(made) => made,
        None => {
            let made = tokio::select! {
                made = make(&router, agent, extra) => made,
                _ = &mut lost => return,
            };
            let Some(made) = settled(&name, made) else {
                return;
            };
            made
        }
    };
    let Some(connection) = connection.upgrade() else {
        return;
    };
    match add(&router, agent, &connection, &staged, made, extra).await {
        Ok((0, _)) => {}
        Ok((n, socket)) => info!(
            "{name}: {} lanes toward the agent, through {}",
            n + 1,
            match socket {
                true => "its socket",
                false => "cat",
            }
        ),
        Err(why) => info!("{name}: one lane toward the agent: {why}"),
    }
}

/// What was made, if anything; why not said at `-v`.
fn settled(name: &str, made: Result<Option<Made>, String>) -> Option<Made> {
    made.unwrap_or_else(|why| {
        info!("{name}: one lane toward the agent: {why}");
        None
    })
}

/// Where the agent made the lanes' socket and FIFOs.
struct Made {
    dir: String,
    token: Vec<u8>,
    socket: bool,
}

/// Time the round trip to `agent` (a request for no lanes, which it
/// answers at once); if it is long, [`make`] the lanes' socket and FIFOs.
/// `None`: one window covers the path.
async fn prepare(router: &Router, agent: ContextId, extra: u8) -> Result<Option<Made>, String> {
    let asked = Instant::now();
    let probe = LanesRequest { lanes: 0 };
    let _: LanesReply = ask(router, agent, handle::LANES, &probe, STEP_TIMEOUT).await?;
    let rtt = asked.elapsed();
    if rtt < MIN_LANES_RTT {
        debug!("round trip {rtt:?}: no lanes");
        return Ok(None);
    }
    make(router, agent, extra).await
}

/// Have the agent make the socket and `extra` FIFOs; this round trip, less
/// the agent's own work, must be long too (`None` if not: nothing is left
/// made). Whatever fails, the agent is told to remove what it made.
async fn make(router: &Router, agent: ContextId, extra: u8) -> Result<Option<Made>, String> {
    let asked = Instant::now();
    let request = LanesRequest { lanes: extra };
    let answer = ask(router, agent, handle::LANES, &request, STEP_TIMEOUT).await;
    let elapsed = asked.elapsed();
    let (made, took) = match answer {
        Ok(LanesReply::Prepared {
            dir,
            token,
            socket,
            took_us,
        }) => (
            Made { dir, token, socket },
            Duration::from_micros(u64::from(took_us)),
        ),
        Ok(LanesReply::Refused(why)) => return Err(sanitize_line(why.as_bytes())),
        Err(why) => {
            // Its answer may come yet.
            drop_lanes(router, agent).await;
            return Err(why);
        }
    };
    let rtt = elapsed.saturating_sub(took);
    match made.token.len() {
        _ if rtt < MIN_LANES_RTT => {
            debug!("round trip {rtt:?}: no lanes");
            drop_lanes(router, agent).await;
            Ok(None)
        }
        TOKEN_LEN => Ok(Some(made)),
        n => {
            drop_lanes(router, agent).await;
            Err(format!("the agent gave a token of {n} bytes"))
        }
    }
}

/// Tell the agent that no lane joins: it removes what it made.
async fn drop_lanes(router: &Router, agent: ContextId) {
    let none = JoinLanes {
        lanes: Vec::new(),
        socket: false,
    };
    let _: Result<Result<(), String>, String> =
        ask(router, agent, handle::LANES_JOIN, &none, STEP_TIMEOUT).await;
}

/// Open the lanes `made` is for, have the agent join those that opened,
/// and switch the stream to go round them.
async fn add(
    router: &Router,
    agent: ContextId,
    connection: &Arc<Connection>,
    staged: &Staged,
    made: Made,
    extra: u8,
) -> Result<(u8, bool), String> {
    let opened = open_lanes(connection, &made.dir, &made.token, made.socket, extra).await;
    let opened = match opened {
        Ok(opened) if !opened.writers.is_empty() => opened,
        failed => {
            drop_lanes(router, agent).await;
            return match failed {
                Ok(Opened { stopped: None, .. }) => Ok((0, false)),
                Ok(Opened { stopped, .. }) => Err(stopped.unwrap_or_default()),
                Err(why) => Err(why),
            };
        }
    };
    if let Some(why) = &opened.stopped {
        debug!("{why}; {} extra lanes", opened.writers.len());
    }
    let (numbers, writers): (Vec<u8>, Vec<LaneWrite>) = opened.writers.into_iter().unzip();
    let lanes = numbers.len() as u8;
    let join = JoinLanes {
        lanes: numbers,
        socket: opened.socket,
    };
    let joined: Result<(), String> =
        ask(router, agent, handle::LANES_JOIN, &join, JOIN_TIMEOUT).await?;
    joined.map_err(|why| sanitize_line(why.as_bytes()))?;
    staged.stage_writers(writers);
    router.send(switch_frame(agent, lanes)).await;
    Ok((lanes, join.socket))
}

/// Ask `agent` on `handle` and wait for its answer.
async fn ask<Q: Serialize, A: DeserializeOwned>(
    router: &Router,
    agent: ContextId,
    handle: Handle,
    request: &Q,
    timeout: Duration,
) -> Result<A, String> {
    let (reply, mut rx) = router.alloc_reply_handle(agent);
    // The handler goes however this ends, a cancelled wait included.
    let _handler = ReplyHandler(router, reply);
    let mut header = router.header(agent, handle);
    header.reply_to = reply;
    router.send(Frame::cbor(header, request)).await;
    let answer = tokio::time::timeout(timeout, rx.recv()).await;
    let frame = answer
        .map_err(|_| "no answer from the agent".to_string())?
        .ok_or("the agent went away")?;
    if frame.is_dead() {
        return Err(sanitize_line(frame.dead_reason().as_bytes()));
    }
    frame.decode_cbor("lanes answer").map_err(|e| e.to_string())
}

/// A reply handler, removed when dropped.
struct ReplyHandler<'a>(&'a Router, Handle);

impl Drop for ReplyHandler<'_> {
    fn drop(&mut self) {
        self.0.remove_handler(self.1);
    }
}
