//! The host's end of lanes ([`router::lane_rules`]): if the round trip to
//! an ssh hop's agent, timed once it is attached, is long enough for one
//! SSH channel's window to be the limit, the agent makes the lanes'
//! socket and FIFOs at once; then once a push through it is held back by
//! its window, open more channels on the same
//! connection to the agent's socket (or, where the server forbids that,
//! session channels each running `cat` into one of the agent's FIFOs),
//! and switch the stream to go round them. A hop that only pulls, or runs
//! short commands, never gets lanes.
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
    JoinLanes, LanesReply, LanesRequest, MAX_EXTRA_LANES, MIN_LANES_RTT, TOKEN_LEN, lane_command,
    lane_socket, socket_hello, switch_frame,
};
use router::lanes::{LaneWrite, Staged};
use router::message::{ContextId, Handle, handle};
use router::router::RouterEvent;
use router::text::sanitize_line;
use russh::ChannelMsg;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info};

use super::connect::Connection;
use super::packets::PacketWriter;

/// How long each step may take: an answer from the agent, a channel's
/// opening and its command's start.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the agent may take to join the lanes: longer than it gives
/// them to deliver their token, so its own reason comes back.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Time the round trip to `agent` at once; if it is long enough for one
/// channel's window to be the limit, have the agent make the lanes' socket
/// and FIFOs, wait until a push through the stream to it is held back by
/// its window (`staged` is the stream's: [`Staged::wanted`]), then add up
/// to `extra` lanes (at most [`MAX_EXTRA_LANES`]). Until then only a weak
/// hold on `connection` is kept, and the agent's loss ends the wait.
/// Anything that fails leaves one channel, said at `-v`.
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
    let made = match made {
        Ok(Some(made)) => made,
        Ok(None) => return,
        Err(why) => {
            info!("{name}: one lane toward the agent: {why}");
            return;
        }
    };
    tokio::select! {
        _ = staged.wanted() => {}
        _ = &mut lost => return,
    }
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

/// Where the agent made the lanes' socket and FIFOs.
struct Made {
    dir: String,
    token: Vec<u8>,
    socket: bool,
}

/// Time the round trip to `agent` (a request for no lanes, which it
/// answers at once); if it is long, have the agent make the socket and
/// the FIFOs (this round trip, less the agent's own work, must be long
/// too). `None`: one window covers the path.
async fn prepare(router: &Router, agent: ContextId, extra: u8) -> Result<Option<Made>, String> {
    let asked = Instant::now();
    let probe = LanesRequest { lanes: 0 };
    let _: LanesReply = ask(router, agent, handle::LANES, &probe, STEP_TIMEOUT).await?;
    let rtt = asked.elapsed();
    if rtt < MIN_LANES_RTT {
        debug!("round trip {rtt:?}: no lanes");
        return Ok(None);
    }
    let asked = Instant::now();
    let request = LanesRequest { lanes: extra };
    let answer = ask(router, agent, handle::LANES, &request, STEP_TIMEOUT).await?;
    let elapsed = asked.elapsed();
    let (made, took) = match answer {
        LanesReply::Prepared {
            dir,
            token,
            socket,
            took_us,
        } => (
            Made { dir, token, socket },
            Duration::from_micros(u64::from(took_us)),
        ),
        LanesReply::Refused(why) => return Err(sanitize_line(why.as_bytes())),
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

/// The lanes that opened: each one's number and writer, in order, whether
/// they go to the socket, and why the first that did not open failed.
#[derive(Default)]
struct Opened {
    writers: Vec<(u8, LaneWrite)>,
    socket: bool,
    stopped: Option<String>,
}

/// Open `extra` lanes at once to the agent's socket if it made one (a
/// round trip); if the server opens none, session channels running `cat`
/// instead (two: the channel, then its command). A server's `MaxSessions`
/// refuses the session channels past it, whichever they are.
async fn open_lanes(
    connection: &Arc<Connection>,
    dir: &str,
    token: &[u8],
    socket: bool,
    extra: u8,
) -> Result<Opened, String> {
    if !socket {
        return open_cat_lanes(connection, dir, token, extra).await;
    }
    let socket = lane_socket(dir).map_err(|e| e.to_string())?;
    let opened = open_each(extra, |k| {
        let (connection, socket) = (connection.clone(), socket.clone());
        let hello = socket_hello(k, token);
        async move {
            let channel = tokio::time::timeout(
                STEP_TIMEOUT,
                connection.channel_open_direct_streamlocal(socket),
            )
            .await
            .map_err(|_| "no channel in time".to_string())?
            .map_err(|e| e.to_string())?;
            finish_lane(channel, &hello).await
        }
    })
    .await?;
    if !opened.writers.is_empty() {
        return Ok(Opened {
            socket: true,
            ..opened
        });
    }
    debug!(
        "no lane to the agent's socket ({}): lanes through cat",
        opened.stopped.unwrap_or_default()
    );
    open_cat_lanes(connection, dir, token, extra).await
}

/// Open `extra` session channels at once, each running `cat` into a FIFO.
async fn open_cat_lanes(
    connection: &Arc<Connection>,
    dir: &str,
    token: &[u8],
    extra: u8,
) -> Result<Opened, String> {
    open_each(extra, |k| {
        let connection = connection.clone();
        let (command, token) = (lane_command(dir, k), token.to_vec());
        async move {
            let command = command.map_err(|e| e.to_string())?;
            open_cat_lane(&connection, command, &token).await
        }
    })
    .await
}

/// Open lanes 1 to `extra` (at most [`MAX_EXTRA_LANES`]) at once with
/// `open`.
async fn open_each<F, Fut>(extra: u8, open: F) -> Result<Opened, String>
where
    F: Fn(u8) -> Fut,
    Fut: std::future::Future<Output = Result<LaneWrite, String>> + Send + 'static,
{
    let mut opening = tokio::task::JoinSet::new();
    for k in 1..=extra.min(MAX_EXTRA_LANES) {
        let lane = open(k);
        opening.spawn(async move { (k, lane.await) });
    }
    let mut results: Vec<(u8, Result<LaneWrite, String>)> = Vec::new();
    while let Some(done) = opening.join_next().await {
        results.push(done.map_err(|e| format!("opening a lane: {e}"))?);
    }
    results.sort_by_key(|(k, _)| *k);
    let mut opened = Opened::default();
    for (k, result) in results {
        match result {
            Ok(writer) => opened.writers.push((k, writer)),
            Err(why) => {
                opened.stopped.get_or_insert(format!("lane {k}: {why}"));
            }
        }
    }
    Ok(opened)
}

/// A lane's writing half. Dropping it closes the channel: russh sends
/// nothing when a channel's writer goes, and the remote `cat` (with the
/// sshd session and the connection itself) would wait for ever.
struct LaneChannel {
    writer: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
    closed: Option<oneshot::Sender<()>>,
}

impl Drop for LaneChannel {
    fn drop(&mut self) {
        if let Some(closed) = self.closed.take() {
            let _ = closed.send(());
        }
    }
}

impl AsyncWrite for LaneChannel {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

/// Open one lane through `cat`: a session channel running `command`, with
/// `token` written first. Whatever fails closes the channel.
async fn open_cat_lane(
    connection: &Connection,
    command: String,
    token: &[u8],
) -> Result<LaneWrite, String> {
    let mut channel = tokio::time::timeout(STEP_TIMEOUT, connection.channel_open_session())
        .await
        .map_err(|_| "no channel in time".to_string())?
        .map_err(|e| e.to_string())?;
    if let Err(why) = start_lane(&mut channel, command).await {
        let _ = channel.close().await;
        return Err(why);
    }
    finish_lane(channel, token).await
}

/// An open lane's channel, `first` written on it: its writer. Its stderr
/// and ending are logged; dropping the writer closes it.
async fn finish_lane(
    channel: russh::Channel<russh::client::Msg>,
    first: &[u8],
) -> Result<LaneWrite, String> {
    let (mut read_half, write_half) = channel.split();
    let (closed, mut dropped) = oneshot::channel();
    let mut lane = LaneChannel {
        writer: Box::pin(PacketWriter::new(write_half.make_writer())),
        closed: Some(closed),
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut dropped => {
                    let _ = write_half.eof().await;
                    let _ = write_half.close().await;
                    break;
                }
                message = read_half.wait() => match message {
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        debug!("lane: remote: {}", sanitize_line(&data));
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        debug!("lane: exited {exit_status}")
                    }
                    // The far end is done; the channel stays ours to
                    // close when the writer goes.
                    Some(ChannelMsg::Eof) => {
                        let _ = (&mut dropped).await;
                        let _ = write_half.eof().await;
                        let _ = write_half.close().await;
                        break;
                    }
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                },
            }
        }
    });
    // Staged until a flush (a whole packet goes at once otherwise); a
    // server that opens no window for it holds it back: not for ever.
    tokio::time::timeout(STEP_TIMEOUT, async {
        lane.write_all(first).await?;
        lane.flush().await
    })
    .await
    .map_err(|_| "the token did not go out in time".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(Box::new(lane))
}

/// Run `command` on the lane's channel and wait until it started.
async fn start_lane(
    channel: &mut russh::Channel<russh::client::Msg>,
    command: String,
) -> Result<(), String> {
    channel
        .exec(true, command)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(()),
                Some(ChannelMsg::Failure) => return Err("the server refused the command".into()),
                Some(ChannelMsg::WindowAdjusted { .. }) => {}
                Some(other) => return Err(format!("the channel answered {other:?}")),
                None => return Err("the channel closed".to_string()),
            }
        }
    })
    .await
    .map_err(|_| "the command did not start in time".to_string())?
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
    let mut header = router.header(agent, handle);
    header.reply_to = reply;
    router.send(Frame::cbor(header, request)).await;
    let answer = tokio::time::timeout(timeout, rx.recv()).await;
    router.remove_handler(reply);
    let frame = answer
        .map_err(|_| "no answer from the agent".to_string())?
        .ok_or("the agent went away")?;
    if frame.is_dead() {
        return Err(sanitize_line(frame.dead_reason().as_bytes()));
    }
    frame.decode_cbor("lanes answer").map_err(|e| e.to_string())
}
