//! Frames over a byte stream: buffered reading and vectored writing.
//!
//! The reader owns one growable buffer and splits each payload off it without
//! copying, so buffering is O(n) whatever the frame sizes.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use proto::frame::{Frame, FrameError};

const READ_AHEAD: usize = 256 << 10;

/// Why a frame stream ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("stream ended in the middle of a frame ({0} bytes pending)")]
    Truncated(usize),
    #[error(transparent)]
    Lanes(#[from] proto::lanes::LanesError),
}

/// Reads frames from an `AsyncRead`.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_payload: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_payload: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_AHEAD),
            max_payload,
        }
    }

    /// The next frame, or `None` on a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.buf, self.max_payload)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < READ_AHEAD / 4 {
                self.buf.reserve(READ_AHEAD);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated(self.buf.len()))
                };
            }
        }
    }
}

/// Writes frames to an `AsyncWrite`, header and payload in one vectored write.
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W) -> Self {
        FrameWriter { inner }
    }

    /// Write one frame (not flushed; see [`FrameWriter::flush`]).
    pub async fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        let header = frame.header_bytes();
        let mut chain = Buf::chain(&header[..], &frame.payload[..]);
        self.inner.write_all_buf(&mut chain).await
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().await
    }

    /// Shut the write side down (EOF for the peer).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proto::frame::{Encoding, Header};

    #[tokio::test]
    async fn frames_cross_a_duplex_pipe() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = FrameWriter::new(a);
        let mut r = FrameReader::new(b, 1 << 20);
        let big = Bytes::from(vec![7u8; 300_000]);
        let f = Frame {
            header: Header {
                dst: 9,
                ..Default::default()
            },
            encoding: Encoding::Bytes,
            payload: big,
        };
        let f2 = f.clone();
        let writer = tokio::spawn(async move {
            w.write_frame(&f2).await.unwrap();
            w.write_frame(&f2).await.unwrap();
            w.shutdown().await.unwrap();
        });
        assert_eq!(r.read_frame().await.unwrap(), Some(f.clone()));
        assert_eq!(r.read_frame().await.unwrap(), Some(f));
        assert!(r.read_frame().await.unwrap().is_none());
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_errors() {
        let mut r = FrameReader::new(&b"Last login: yesterday\n"[..], 1024);
        assert!(matches!(r.read_frame().await, Err(ReadError::Frame(_))));
        let mut r = FrameReader::new(&b"MC\0\0"[..], 1024);
        assert!(matches!(r.read_frame().await, Err(ReadError::Truncated(4))));
    }
}
