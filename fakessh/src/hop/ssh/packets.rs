//! Whole SSH packets out of frame writes.
//!
//! russh's channel writer turns every `write` into one SSH data packet. A
//! frame is written as its 26-byte header and then its payload, so without
//! help every frame costs a tiny packet of its own: a separate encryption,
//! MAC, message and syscall here, and a separate read, decrypt and dispatch
//! in sshd. This adapter stages small writes and sends full packets; large
//! writes that start on a packet boundary go straight through. Nothing is
//! held back across a flush, and the router's writer flushes whenever its
//! queue is empty, so latency is unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

/// OpenSSH's maximum packet size for session channels (CHAN_SES_PACKET_DEFAULT).
pub const SSH_PACKET: usize = 32 << 10;

pub struct PacketWriter<W> {
    inner: W,
    staged: Vec<u8>,
    /// Bytes of `staged` already handed to `inner`.
    sent: usize,
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(inner: W) -> Self {
        PacketWriter {
            inner,
            staged: Vec::with_capacity(SSH_PACKET),
            sent: 0,
        }
    }

    /// Hand everything staged to the channel.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.staged.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.staged[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.staged.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for PacketWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.staged.len() == SSH_PACKET || this.sent > 0 {
            ready!(this.poll_drain(cx))?;
        }
        if this.staged.is_empty() && buf.len() >= SSH_PACKET {
            return Pin::new(&mut this.inner).poll_write(cx, &buf[..SSH_PACKET]);
        }
        let take = (SSH_PACKET - this.staged.len()).min(buf.len());
        this.staged.extend_from_slice(&buf[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records the size of every write that reaches it.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<usize>,
        data: Vec<u8>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.writes.push(buf.len());
            this.data.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn headers_and_payloads_share_packets_and_bytes_keep_their_order() {
        let mut w = PacketWriter::new(Recorder::default());
        let mut expected = Vec::new();
        for i in 0..10u8 {
            let header = [i; 26];
            let payload = vec![i.wrapping_mul(7); 20_000 + i as usize * 3_000];
            w.write_all(&header).await.unwrap();
            w.write_all(&payload).await.unwrap();
            expected.extend_from_slice(&header);
            expected.extend_from_slice(&payload);
        }
        w.flush().await.unwrap();
        let rec = &w.inner;
        assert_eq!(rec.data, expected);
        // Every packet but the last is full; no 26-byte packets.
        let (last, full) = rec.writes.split_last().unwrap();
        assert!(full.iter().all(|n| *n == SSH_PACKET), "{:?}", rec.writes);
        assert!(*last > 0 && *last <= SSH_PACKET);
        assert_eq!(rec.writes.len(), expected.len().div_ceil(SSH_PACKET));
    }

    #[tokio::test]
    async fn a_flush_sends_what_is_staged() {
        let mut w = PacketWriter::new(Recorder::default());
        w.write_all(b"hello").await.unwrap();
        assert!(w.inner.writes.is_empty());
        w.flush().await.unwrap();
        assert_eq!(w.inner.writes, vec![5]);
        w.write_all(b"bye").await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(w.inner.data, b"hellobye");
    }
}
