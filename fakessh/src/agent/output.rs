//! A command's stdout and stderr, pumped to the shim by one task, stderr
//! first.
//!
//! Why one task: with a task per stream, a message the command wrote to
//! stderr just before its last stdout bytes could reach the shim after them.
//! rsync shows why that matters: its client reads the server's final status
//! on stdout, exits, and kills `ssh` with SIGUSR1 on the way out, so the
//! server's "Permission denied" on stderr was lost about one time in seven.
//! OpenSSH's sshd services both pipes in one poll loop; so do we, and
//! whatever stderr holds when stdout is read goes out first.

use std::sync::Arc;

use bytes::BytesMut;
use router_core::Router;
use router_core::frame::{Frame, Header};
use router_core::message::{ContextId, DATA_CHUNK, OutputStream, SessionEvent, handle};
use router_core::pump::{SendWindow, ready_now, send_in_turn};
use router_core::router::Turn;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

pub type BoxedRead = Box<dyn AsyncRead + Unpin + Send>;

/// One output stream of the command.
pub struct Output {
    reader: Option<BoxedRead>,
    buf: BytesMut,
    window: SendWindow,
    header: Header,
    /// Signalled when nobody reads this stream any more (the shim's end was
    /// closed): drop the pipe so the command gets EPIPE.
    closed: Arc<Notify>,
    turn: Option<Turn>,
    sent: u64,
}

impl Output {
    pub fn new(
        reader: Option<BoxedRead>,
        window: SendWindow,
        header: Header,
        closed: Arc<Notify>,
    ) -> Output {
        Output {
            reader,
            buf: BytesMut::new(),
            window,
            header,
            closed,
            turn: None,
            sent: 0,
        }
    }
}

/// What happened next on the two streams.
enum Step {
    Closed(OutputStream),
    Read(OutputStream, std::io::Result<usize>),
}

/// Read whichever stream has data, stderr first; cancel-safe (reads go into
/// the streams' own buffers).
async fn next_step(out: &mut Output, err: &mut Output) -> Step {
    tokio::select! {
        biased;
        _ = err.closed.notified(), if err.reader.is_some() => Step::Closed(OutputStream::Stderr),
        _ = out.closed.notified(), if out.reader.is_some() => Step::Closed(OutputStream::Stdout),
        r = read(&mut err.reader, &mut err.buf), if err.reader.is_some() => Step::Read(OutputStream::Stderr, r),
        r = read(&mut out.reader, &mut out.buf), if out.reader.is_some() => Step::Read(OutputStream::Stdout, r),
    }
}

async fn read(reader: &mut Option<BoxedRead>, buf: &mut BytesMut) -> std::io::Result<usize> {
    let Some(reader) = reader else {
        return Ok(0);
    };
    if buf.capacity() < DATA_CHUNK {
        buf.reserve(DATA_CHUNK);
    }
    reader.read_buf(buf).await
}

/// Pump both streams until each has ended or been closed; EOF of each is
/// reported as it happens. Returns the bytes sent on (stdout, stderr).
pub async fn pump(
    router: Arc<Router>,
    peer: ContextId,
    mut out: Output,
    mut err: Output,
) -> (u64, u64) {
    loop {
        if out.reader.is_none() && err.reader.is_none() {
            return (out.sent, err.sent);
        }
        // Keep a turn only while data is ready (see `Turn`).
        let holding = out.turn.is_some() || err.turn.is_some();
        let step = match holding {
            true => ready_now(next_step(&mut out, &mut err)).await,
            false => None,
        };
        let step = match step {
            Some(step) => step,
            None => {
                out.turn = None;
                err.turn = None;
                next_step(&mut out, &mut err).await
            }
        };
        let (kind, result) = match step {
            Step::Closed(kind) => {
                let s = stream(kind, &mut out, &mut err);
                s.reader = None;
                s.turn = None;
                continue;
            }
            Step::Read(kind, result) => (kind, result),
        };
        let s = stream(kind, &mut out, &mut err);
        match result {
            // A pty master reads EIO once the command's side is closed.
            Ok(0) | Err(_) => {
                s.reader = None;
                s.turn = None;
                send_event(&router, peer, &SessionEvent::Eof(kind));
            }
            Ok(n) => send_chunk(&router, s, n).await,
        }
    }
}

fn stream<'a>(kind: OutputStream, out: &'a mut Output, err: &'a mut Output) -> &'a mut Output {
    match kind {
        OutputStream::Stdout => out,
        OutputStream::Stderr => err,
    }
}

/// Send the `n` bytes just read, under the stream's credit and in turn.
async fn send_chunk(router: &Router, s: &mut Output, n: usize) {
    if send_in_turn(router, &s.window, &mut s.turn, s.header, &mut s.buf, n).await {
        s.sent += n as u64;
    } else {
        // The session is gone: stop reading this stream.
        s.reader = None;
    }
}

fn send_event(router: &Router, peer: ContextId, ev: &SessionEvent) {
    router.send(Frame::cbor(router.header(peer, handle::SESSION_EVENT), ev));
}
