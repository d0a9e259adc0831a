//! Bulk data under credit-based flow control.
//!
//! The receiver of a stream grants credit as it writes data out; the sender
//! never has more than the granted bytes in flight. That bounds every buffer
//! between the two ends, whatever their relative speed: the fix for the flow
//! control Mitogen's fakessh never had.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;

use crate::frame::{Frame, Header};
use crate::message::DATA_CHUNK;
use crate::router::{Router, TURN_EXEMPT, Turn};

/// Bytes the peer has allowed us to send and not yet seen.
#[derive(Clone, Debug)]
pub struct SendWindow {
    credit: Arc<Semaphore>,
}

impl SendWindow {
    pub fn new(initial: u32) -> Self {
        SendWindow {
            credit: Arc::new(Semaphore::new(initial as usize)),
        }
    }

    /// Wait until `n` bytes of credit are available and consume them.
    /// Returns false once the window is closed.
    pub async fn take(&self, n: usize) -> bool {
        match self.credit.acquire_many(n as u32).await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Consume `n` bytes of credit if they are there now.
    pub fn try_take(&self, n: usize) -> bool {
        self.credit
            .try_acquire_many(n as u32)
            .map(|permit| permit.forget())
            .is_ok()
    }

    /// The peer wrote `n` bytes out: allow that many more.
    pub fn grant(&self, n: u32) {
        // Cap absurd grants from a confused peer instead of panicking.
        let room = Semaphore::MAX_PERMITS.saturating_sub(self.credit.available_permits());
        self.credit.add_permits((n as usize).min(room));
    }

    /// Wake every waiter with "closed".
    pub fn close(&self) {
        self.credit.close();
    }

    pub fn is_closed(&self) -> bool {
        self.credit.is_closed()
    }
}

/// Poll `f` once: its output if it is ready now, else `None`. Only for
/// cancel-safe futures (a read into a caller-owned buffer, a frame read).
pub async fn ready_now<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        Poll::Ready(match f.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// Copy `reader` into data frames with `header` until EOF, never exceeding
/// the credit in `window`, taking turns with other senders on the same
/// stream ([`Turn`]). Returns the byte count, or the read error.
pub async fn pump_to_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    window: &SendWindow,
    router: &Router,
    header: Header,
) -> std::io::Result<u64> {
    let mut buf = BytesMut::new();
    let mut total = 0u64;
    let mut turn: Option<Turn> = None;
    loop {
        if buf.capacity() < DATA_CHUNK {
            buf.reserve(DATA_CHUNK);
        }
        let ready = match turn {
            Some(_) => ready_now(reader.read_buf(&mut buf)).await,
            None => None,
        };
        let n = match ready {
            Some(n) => n?,
            None => {
                turn = None;
                reader.read_buf(&mut buf).await?
            }
        };
        if n == 0 {
            return Ok(total);
        }
        if !send_in_turn(router, window, &mut turn, header, &mut buf, n).await {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Send the `n` bytes just read into `buf` as one data frame: under the
/// window's credit (giving up the turn before waiting for it), in turn once
/// the chunk is bigger than [`TURN_EXEMPT`], and paced into the stream's
/// queue. False when the window is closed (the session is gone); nothing was
/// sent then.
pub async fn send_in_turn(
    router: &Router,
    window: &SendWindow,
    turn: &mut Option<Turn>,
    header: Header,
    buf: &mut BytesMut,
    n: usize,
) -> bool {
    if !window.try_take(n) {
        *turn = None;
        if !window.take(n).await {
            return false;
        }
    }
    if turn.is_none() && n > TURN_EXEMPT {
        *turn = router.take_turn(header.dst).await;
    }
    router
        .send_paced(Frame::data(header, buf.split().freeze()))
        .await;
    if let Some(t) = turn
        && !t.spend(n)
    {
        *turn = None;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::StreamRole;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn sender_stops_at_the_window_and_resumes_on_credit() {
        let router = Router::new(1, vec![0], 1 << 20);
        let (tx, mut rx) = mpsc::unbounded_channel();
        router.add_stream("parent", 0, StreamRole::Parent, tx);
        let window = SendWindow::new(100);
        let (mut w, r) = tokio::io::duplex(4096);
        let w2 = window.clone();
        let r2 = router.clone();
        let task = tokio::spawn(async move { pump_to_frames(r, &w2, &r2, r2.header(0, 5)).await });
        use tokio::io::AsyncWriteExt;
        w.write_all(&[1u8; 60]).await.unwrap();
        w.write_all(&[2u8; 60]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut got = 0;
        while let Ok(f) = rx.try_recv() {
            got += f.payload.len();
        }
        assert!(got <= 100, "sent {got} bytes with 100 of credit");
        window.grant(100);
        drop(w);
        let total = task.await.unwrap().unwrap();
        assert_eq!(total, 120);
        while let Ok(f) = rx.try_recv() {
            got += f.payload.len();
        }
        assert_eq!(got, 120);
    }
}
