//! Opening lanes' channels ([`super`]): to the agent's socket
//! (`direct-streamlocal`), or sessions running `cat` into its FIFOs.

use std::sync::Arc;
use std::time::Duration;

use router::lane_rules::{MAX_EXTRA_LANES, lane_command, lane_socket, socket_hello};
use router::lanes::LaneWrite;
use router::text::sanitize_line;
use russh::ChannelMsg;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tracing::debug;

use crate::hop::ssh::connect::Connection;
use crate::hop::ssh::packets::PacketWriter;

/// How long each step may take: an answer from the agent, a channel's
/// opening and its command's start.
pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The lanes that opened: each one's number and writer, in order, whether
/// they go to the socket, and why the first that did not open failed.
#[derive(Default)]
pub(super) struct Opened {
    pub(super) writers: Vec<(u8, LaneWrite)>,
    pub(super) socket: bool,
    pub(super) stopped: Option<String>,
}

/// Open `extra` lanes at once to the agent's socket if it made one (a
/// round trip); if the server opens none, session channels running `cat`
/// instead (two: the channel, then its command). A server's `MaxSessions`
/// refuses the session channels past it, whichever they are.
pub(super) async fn open_lanes(
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
