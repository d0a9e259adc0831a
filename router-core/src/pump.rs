//! Moving bulk data onto the router: credit that can be waited for, and a
//! sender that takes turns with the others sharing its stream.
//!
//! The accounting itself is [`session::credit`](proto::session::credit);
//! this is the async side for drivers that read in one task and learn of
//! credit in another.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use crate::router::{Router, TURN_EXEMPT, Turn};
use proto::frame::{Frame, Header};
use proto::session::{DATA_CHUNK, ProtocolError, SendCredit};

#[derive(Debug)]
struct WindowState {
    credit: SendCredit,
    closed: bool,
}

/// A stream's send credit, shared by the task that sends and the one that
/// hears of grants.
#[derive(Clone, Debug)]
pub struct SendWindow {
    state: Arc<Mutex<WindowState>>,
    changed: Arc<Notify>,
}

impl SendWindow {
    pub fn new(window: u32) -> Self {
        SendWindow {
            state: Arc::new(Mutex::new(WindowState {
                credit: SendCredit::new(window),
                closed: false,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charge a frame of `len` bytes now, if the credit is there.
    pub fn try_take(&self, len: usize) -> bool {
        let mut state = self.lock();
        !state.closed && state.credit.take(len)
    }

    /// Wait until a frame of `len` bytes fits the credit and charge it.
    /// False once the window is closed.
    pub async fn take(&self, len: usize) -> bool {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                if state.credit.take(len) {
                    return true;
                }
            }
            changed.await;
        }
    }

    /// The receiver wrote `n` out: allow that much more. A grant for more
    /// than is in flight is refused.
    pub fn grant(&self, n: u32) -> Result<(), ProtocolError> {
        self.lock().credit.grant(n)?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Wake every waiter with "closed".
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Poll `f` once: its output if it is ready now, else `None`.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// A bulk sender on a shared stream: it keeps its turn while it has data
/// ready, and gives it back the moment it would wait ([`Turn`]).
#[derive(Default)]
pub struct BulkSender {
    turn: Option<Turn>,
}

impl BulkSender {
    pub fn new() -> BulkSender {
        BulkSender::default()
    }

    /// Wait for `next` (the next read, the next frame). A turn is kept only
    /// if `next` is ready at once; otherwise it is given back first, so
    /// nobody waits behind an idle sender.
    pub async fn next<F: Future>(&mut self, next: F) -> F::Output {
        let mut next = std::pin::pin!(next);
        if self.turn.is_some() {
            if let Some(out) = poll_once(&mut next).await {
                return out;
            }
            self.turn = None;
        }
        next.await
    }

    /// Give the turn back (before waiting for anything else).
    pub fn release(&mut self) {
        self.turn = None;
    }

    /// Send a data frame: in turn once it is bigger than [`TURN_EXEMPT`],
    /// and paced into its stream's queue.
    pub async fn send(&mut self, router: &Router, frame: Frame) {
        let len = frame.payload.len();
        if self.turn.is_none() && len > TURN_EXEMPT {
            self.turn = router.take_turn(frame.header.dst).await;
        }
        router.send_paced(frame).await;
        if let Some(turn) = &mut self.turn
            && !turn.spend(len)
        {
            self.turn = None;
        }
    }

    /// Send the `n` bytes just read into `buf` as one data frame with
    /// `header`, under `window`'s credit (giving the turn back before
    /// waiting for it). False when the window is closed: nothing was sent.
    pub async fn send_under(
        &mut self,
        router: &Router,
        window: &SendWindow,
        header: Header,
        buf: &mut BytesMut,
    ) -> bool {
        let n = buf.len();
        if !window.try_take(n) {
            self.release();
            if !window.take(n).await {
                return false;
            }
        }
        self.send(router, Frame::data(header, buf.split().freeze()))
            .await;
        true
    }
}

/// Copy `reader` into data frames with `header` until EOF, never exceeding
/// the credit in `window`, taking turns with other senders on the same
/// stream. Returns the byte count, or the read error.
pub async fn pump_to_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    window: &SendWindow,
    router: &Router,
    header: Header,
) -> std::io::Result<u64> {
    let mut buf = BytesMut::new();
    let mut total = 0u64;
    let mut sender = BulkSender::new();
    loop {
        if buf.capacity() < DATA_CHUNK {
            buf.reserve(DATA_CHUNK);
        }
        let n = sender.next(reader.read_buf(&mut buf)).await?;
        if n == 0 {
            return Ok(total);
        }
        if !sender.send_under(router, window, header, &mut buf).await {
            return Ok(total);
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::StreamRole;
    use proto::session::MIN_FRAME_COST;
    use std::time::Duration;

    #[tokio::test]
    async fn sender_stops_at_the_window_and_resumes_on_credit() {
        let router = Router::new(1, vec![0], 1 << 20);
        let (_, mut rx) = router.add_stream("parent", 0, StreamRole::Parent, 64).await;
        let window = SendWindow::new(2 * MIN_FRAME_COST);
        let (mut w, r) = tokio::io::duplex(4096);
        let w2 = window.clone();
        let r2 = router.clone();
        let task = tokio::spawn(async move { pump_to_frames(r, &w2, &r2, r2.header(0, 5)).await });
        use tokio::io::AsyncWriteExt;
        for byte in 1..=3u8 {
            w.write_all(&[byte; 60]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut frames = 0;
        while let Ok(f) = rx.try_recv() {
            assert_eq!(f.payload.len(), 60);
            frames += 1;
        }
        assert_eq!(frames, 2, "two frames fit a window of two minimal frames");
        assert!(
            window.grant(3 * MIN_FRAME_COST).is_err(),
            "more than is in flight"
        );
        window.grant(MIN_FRAME_COST).unwrap();
        drop(w);
        let total = task.await.unwrap().unwrap();
        assert_eq!(total, 180);
        assert_eq!(rx.try_recv().unwrap().payload[0], 3);
    }

    #[tokio::test]
    async fn closing_the_window_releases_a_waiting_sender() {
        let window = SendWindow::new(MIN_FRAME_COST);
        assert!(window.try_take(1));
        let w2 = window.clone();
        let waiting = tokio::spawn(async move { w2.take(1).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        window.close();
        assert!(!waiting.await.unwrap());
        assert!(!window.try_take(0));
    }
}
