//! An ssh session channel as a byte transport for frames.
//!
//! A task owns the channel's read half (and the connection handle, so the
//! connection lives exactly as long as the channel): stdout data messages are
//! handed to a [`ChannelReader`] that the frame reader reads; stderr lines are
//! logged with the hop's name and kept for error messages (each line at
//! most [`crate::hop::lines::LINE_LIMIT`] bytes, however much the remote
//! writes without a newline).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use router::text::sanitize_line;
use russh::ChannelMsg;
use russh::client::{Handle, Msg};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::hostkey::HostKeyCheck;
use super::packets::PacketWriter;
use crate::hop::lines::{Line, LineSplitter};

/// The writing side of a channel.
pub type ChannelWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// The last lines the remote side printed on stderr.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        if let Ok(mut t) = self.0.lock() {
            if t.len() == 5 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Data messages (at most one SSH packet, 32 KiB, each) the reading task may
/// hold for the frame reader: about 1 MiB.
const READ_AHEAD_MESSAGES: usize = 32;

/// The channel's stdout as a byte stream. The reading task hands over each
/// data message's bytes as they are, so every byte is copied once, into the
/// frame reader's buffer (an in-memory pipe in between cost a second copy).
pub struct ChannelReader {
    messages: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while this.current.is_empty() {
            match ready!(this.messages.poll_recv(cx)) {
                Some(bytes) => this.current = bytes,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// How long the channel may stay open after the remote command exited.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// One line the remote printed on stderr: an agent's own log line is
/// passed on as it is; anything else is logged and kept for error
/// messages, sanitized (it is remote text in our diagnostics).
fn stderr_line(name: &str, line: &Line<'_>, tail: &StderrTail) {
    let bytes = line.bytes.strip_suffix(b"\r").unwrap_or(line.bytes);
    // Remote text: escaped, so it cannot drive the operator's terminal
    // from our log or an error.
    let safe = match line.cut {
        0 => sanitize_line(bytes),
        cut => format!("[{cut} bytes cut] {}", sanitize_line(bytes)),
    };
    if safe.starts_with("mitogen-fakessh") {
        // Already a formatted agent log line.
        crate::logging::stderr_line(&safe);
    } else {
        warn!("{name}: remote: {safe}");
    }
    tail.push(safe);
}

/// Split `channel` into (stdout reader, stdin writer, stderr tail).
pub fn split(
    name: &str,
    channel: russh::Channel<Msg>,
    handle: Arc<Handle<HostKeyCheck>>,
) -> (ChannelReader, ChannelWriter, StderrTail) {
    let (mut read_half, write_half) = channel.split();
    let writer: ChannelWriter = Box::pin(PacketWriter::new(write_half.make_writer()));
    let (feed, messages) = mpsc::channel(READ_AHEAD_MESSAGES);
    let out = ChannelReader {
        messages,
        current: Bytes::new(),
    };
    let tail = StderrTail::default();
    let tail2 = tail.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let _keep_connection = handle;
        let _keep_writer_half = write_half;
        let mut stderr_lines = LineSplitter::new();
        let mut exited = false;
        loop {
            // Once the remote command has exited, the channel's end follows
            // at once; a channel held open past that (a child of the shell
            // keeps its stdout) ends here, so nobody waits on it.
            let message = match exited {
                false => read_half.wait().await,
                true => match tokio::time::timeout(EXIT_GRACE, read_half.wait()).await {
                    Ok(message) => message,
                    Err(_) => break,
                },
            };
            match message {
                Some(ChannelMsg::Data { data }) => {
                    if !data.is_empty() && feed.send(data).await.is_err() {
                        break;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    stderr_lines.feed(&data, |line| stderr_line(&name, &line, &tail2));
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    debug!("{name}: agent exited with {exit_status}");
                    exited = true;
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    debug!("{name}: agent killed by {signal_name:?}");
                    exited = true;
                }
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        stderr_lines.finish(|line| stderr_line(&name, &line, &tail2));
        debug!("{name}: channel closed");
    });
    (out, writer, tail)
}
