//! A stream's frames round several byte streams ("lanes", [`proto::lanes`]):
//! the writer and reader that the router's stream tasks use. With one lane
//! they are the plain [`FrameWriter`] and [`FrameReader`].
//!
//! The extra lanes are staged ([`Staged`]) by whoever opened them (the
//! host's ssh hop, the agent for its parent stream) and taken at the
//! switch frame, in the stream's order: the writer right after writing
//! it, the reader right after reading it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{FrameReader, FrameWriter, ReadError};
use proto::frame::Frame;
use proto::lanes::{Turn, check_switch, is_switch_for};
use proto::message::ContextId;

/// An extra lane's reading half.
pub type LaneRead = Box<dyn AsyncRead + Send + Unpin>;
/// An extra lane's writing half.
pub type LaneWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Lanes opened and waiting for the switch frame, and whether a push
/// wants them.
#[derive(Clone, Default)]
pub struct Staged {
    writers: Arc<Mutex<Vec<LaneWrite>>>,
    readers: Arc<Mutex<Vec<LaneRead>>>,
    wanted: Arc<tokio::sync::Notify>,
    /// Extra lanes the writer goes round since the switch.
    joined: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Staged {
    /// The writing halves the stream's writer takes at the switch.
    pub fn stage_writers(&self, lanes: Vec<LaneWrite>) {
        *lock(&self.writers) = lanes;
    }

    /// The reading halves the stream's reader takes at the switch.
    pub fn stage_readers(&self, lanes: Vec<LaneRead>) {
        *lock(&self.readers) = lanes;
    }

    /// A session's stdin through this stream is held back by its window on
    /// a long path ([`crate::Router::want_lanes`]).
    pub fn want(&self) {
        self.wanted.notify_one();
    }

    /// The lanes frames go round now: 1 until the switch.
    pub fn lanes(&self) -> usize {
        1 + self.joined.load(Ordering::Relaxed)
    }

    /// Until a push wants lanes (at once if one already did).
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }
}

/// Reads a stream's frames from its lanes in turn.
pub struct LaneReader<R> {
    first: FrameReader<R>,
    extra: Vec<FrameReader<LaneRead>>,
    turn: Turn,
    max_payload: u32,
    /// This agent's id and its staged lanes, if this is its parent stream
    /// (the only stream a switch is taken on).
    switchable: Option<(ContextId, Staged)>,
}

impl<R: AsyncRead + Unpin> LaneReader<R> {
    pub fn new(first: FrameReader<R>, max_payload: u32) -> Self {
        LaneReader {
            first,
            extra: Vec::new(),
            turn: Turn::default(),
            max_payload,
            switchable: None,
        }
    }

    /// Take a switch frame for `me` with the lanes `staged` holds then.
    pub fn switchable(mut self, me: ContextId, staged: Staged) -> Self {
        self.switchable = Some((me, staged));
        self
    }

    /// The next frame, or `None` once any lane ended cleanly between
    /// frames (a lost lane ends the stream: its frames are never skipped).
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            let frame = match self.turn.take() {
                0 => self.first.read_frame().await?,
                lane => self.extra[lane - 1].read_frame().await?,
            };
            let Some(frame) = frame else { return Ok(None) };
            // Only this agent's own switch, on its parent stream; anything
            // else with the handle is the router's, as any frame.
            let Some((me, staged)) = &self.switchable else {
                return Ok(Some(frame));
            };
            if !is_switch_for(&frame, *me) {
                return Ok(Some(frame));
            }
            let readers = std::mem::take(&mut *lock(&staged.readers));
            check_switch(&frame, *me, readers.len())?;
            self.turn.switch(readers.len())?;
            let max = self.max_payload;
            self.extra = readers
                .into_iter()
                .map(|r| FrameReader::new(r, max))
                .collect();
        }
    }
}

/// Writes a stream's frames to its lanes in turn.
pub struct LaneWriter<W> {
    /// The context at the stream's other end: the switch is the one for it.
    peer: ContextId,
    first: FrameWriter<W>,
    extra: Vec<FrameWriter<LaneWrite>>,
    turn: Turn,
    /// Lanes written to since the last flush.
    dirty: Vec<bool>,
    staged: Staged,
}

impl<W: AsyncWrite + Unpin> LaneWriter<W> {
    pub fn new(first: FrameWriter<W>, peer: ContextId, staged: Staged) -> Self {
        LaneWriter {
            peer,
            first,
            extra: Vec::new(),
            turn: Turn::default(),
            dirty: vec![false],
            staged,
        }
    }

    /// Write one frame on the lane whose turn it is; after the switch frame
    /// for the peer, go round the lanes staged by then. With several lanes
    /// each frame is flushed as the turn leaves its lane: the reader waits
    /// on that lane for it, and a part of a packet held back there while
    /// the other lanes fill would stop both ends.
    pub async fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        let lane = self.turn.take();
        match lane {
            0 => self.first.write_frame(frame).await?,
            lane => self.extra[lane - 1].write_frame(frame).await?,
        }
        self.dirty[lane] = true;
        if self.turn.lanes() > 1 {
            self.dirty[lane] = false;
            match lane {
                0 => self.first.flush().await?,
                lane => self.extra[lane - 1].flush().await?,
            }
        }
        if is_switch_for(frame, self.peer) && self.turn.lanes() == 1 {
            let writers = std::mem::take(&mut *lock(&self.staged.writers));
            if !writers.is_empty() {
                self.turn
                    .switch(writers.len())
                    .map_err(std::io::Error::other)?;
                self.dirty.resize(1 + writers.len(), false);
                self.staged.joined.store(writers.len(), Ordering::Relaxed);
                self.extra = writers.into_iter().map(FrameWriter::new).collect();
            }
        }
        Ok(())
    }

    /// Flush every lane written to since the last flush.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.dirty[0]) {
            self.first.flush().await?;
        }
        for (lane, writer) in self.extra.iter_mut().enumerate() {
            if std::mem::take(&mut self.dirty[lane + 1]) {
                writer.flush().await?;
            }
        }
        Ok(())
    }

    /// Shut every lane down (EOF for the peer).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        let first = self.first.shutdown().await;
        for writer in &mut self.extra {
            let _ = writer.shutdown().await;
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proto::frame::{Encoding, Header};
    use proto::lanes::switch_frame;

    fn data(n: u32) -> Frame {
        Frame {
            header: Header {
                dst: 5,
                handle: 121,
                reply_to: n,
                ..Default::default()
            },
            encoding: Encoding::Bytes,
            payload: Bytes::from(vec![n as u8; 1000 + n as usize]),
        }
    }

    /// Lanes of `buffer` bytes each: (writers, readers).
    fn lanes(n: usize, buffer: usize) -> (Vec<LaneWrite>, Vec<LaneRead>) {
        (0..n)
            .map(|_| {
                let (w, r) = tokio::io::duplex(buffer);
                (Box::new(w) as LaneWrite, Box::new(r) as LaneRead)
            })
            .unzip()
    }

    /// After the switch each frame goes on the next lane, the first
    /// channel included.
    #[tokio::test]
    async fn after_the_switch_frames_go_round_every_lane_in_turn() {
        let (w0, r0) = tokio::io::duplex(1 << 20);
        let (ws, rs) = lanes(3, 1 << 20);
        let staged = Staged::default();
        staged.stage_writers(ws);
        let mut writer = LaneWriter::new(FrameWriter::new(w0), 5, staged);
        for n in 0..3 {
            writer.write_frame(&data(n)).await.unwrap();
        }
        writer.write_frame(&switch_frame(5, 3)).await.unwrap();
        for n in 3..15 {
            writer.write_frame(&data(n)).await.unwrap();
        }
        writer.shutdown().await.unwrap();
        let mut readers = vec![FrameReader::new(Box::new(r0) as LaneRead, 1 << 20)];
        readers.extend(rs.into_iter().map(|r| FrameReader::new(r, 1 << 20)));
        let mut got = Vec::new();
        for reader in &mut readers {
            let mut lane = Vec::new();
            while let Some(f) = reader.read_frame().await.unwrap() {
                lane.push(f.header.reply_to);
            }
            got.push(lane);
        }
        assert_eq!(got[0], [0, 1, 2, 0, 3, 7, 11]);
        assert_eq!(got[1], [4, 8, 12]);
        assert_eq!(got[2], [5, 9, 13]);
        assert_eq!(got[3], [6, 10, 14]);
    }

    /// Copy `from` to `to`, waiting `pause` before each chunk: a lane
    /// whose traffic is delayed more than the others'.
    async fn slow_copy(
        mut from: LaneRead,
        mut to: tokio::io::DuplexStream,
        pause: std::time::Duration,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0; 1500];
        loop {
            tokio::time::sleep(pause).await;
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Every frame arrives once and in order through small lanes that
    /// block their writer, one of them slowed down; the switch frame is
    /// the stream's own and is not delivered.
    #[tokio::test]
    async fn frames_arrive_in_order_through_lanes_of_different_pace() {
        let (w0, r0) = tokio::io::duplex(8192);
        let (ws, rs) = lanes(3, 8192);
        let mut rs: Vec<LaneRead> = rs;
        let (slow_w, slow_r) = tokio::io::duplex(8192);
        let slow_from = std::mem::replace(&mut rs[1], Box::new(slow_r));
        tokio::spawn(slow_copy(
            slow_from,
            slow_w,
            std::time::Duration::from_millis(1),
        ));
        let out = Staged::default();
        out.stage_writers(ws);
        let into = Staged::default();
        into.stage_readers(rs);
        let writer = tokio::spawn(async move {
            let mut writer = LaneWriter::new(FrameWriter::new(w0), 5, out);
            for n in 0..5 {
                writer.write_frame(&data(n)).await.unwrap();
            }
            writer.write_frame(&switch_frame(5, 3)).await.unwrap();
            for n in 5..200 {
                writer.write_frame(&data(n)).await.unwrap();
                if n % 7 == 0 {
                    writer.flush().await.unwrap();
                }
            }
            writer.shutdown().await.unwrap();
        });
        let mut reader =
            LaneReader::new(FrameReader::new(r0, 1 << 20), 1 << 20).switchable(5, into);
        for n in 0..200 {
            assert_eq!(
                reader.read_frame().await.unwrap(),
                Some(data(n)),
                "frame {n}"
            );
        }
        assert_eq!(reader.read_frame().await.unwrap(), None);
        writer.await.unwrap();
    }

    /// A lane that ends mid-stream ends the stream where its turn comes:
    /// nothing after is delivered out of order.
    #[tokio::test]
    async fn a_lost_lane_ends_the_stream_at_its_turn() {
        let (w0, r0) = tokio::io::duplex(1 << 20);
        let (mut ws, rs) = lanes(2, 1 << 20);
        let lost = ws.remove(1);
        drop(lost);
        let (w_dead, _) = tokio::io::duplex(16);
        ws.push(Box::new(w_dead));
        let out = Staged::default();
        out.stage_writers(ws);
        let mut writer = LaneWriter::new(FrameWriter::new(w0), 5, out);
        writer.write_frame(&switch_frame(5, 2)).await.unwrap();
        writer.write_frame(&data(0)).await.unwrap();
        writer.write_frame(&data(1)).await.unwrap();
        // Lane 2's peer is gone: the write fails.
        assert!(writer.write_frame(&data(2)).await.is_err());
        writer.write_frame(&data(3)).await.unwrap();
        drop(writer);
        let into = Staged::default();
        into.stage_readers(rs);
        let mut reader =
            LaneReader::new(FrameReader::new(r0, 1 << 20), 1 << 20).switchable(5, into);
        assert_eq!(reader.read_frame().await.unwrap(), Some(data(0)));
        assert_eq!(reader.read_frame().await.unwrap(), Some(data(1)));
        // Lane 2 never carried anything and ended: the stream ends there,
        // data(3) on lane 0 is never delivered out of turn.
        assert_eq!(reader.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_switch_without_staged_lanes_or_not_from_the_host_breaks_the_stream() {
        let (w, r) = tokio::io::duplex(1 << 16);
        let mut writer = LaneWriter::new(FrameWriter::new(w), 5, Staged::default());
        writer.write_frame(&data(1)).await.unwrap();
        writer.write_frame(&switch_frame(5, 2)).await.unwrap();
        writer.write_frame(&switch_frame(6, 1)).await.unwrap();
        writer.shutdown().await.unwrap();
        let mut reader =
            LaneReader::new(FrameReader::new(r, 1 << 20), 1 << 20).switchable(5, Staged::default());
        assert_eq!(reader.read_frame().await.unwrap(), Some(data(1)));
        assert!(matches!(
            reader.read_frame().await,
            Err(ReadError::Lanes(_))
        ));
        // Not from the host, with lanes staged: refused all the same.
        let (ws, rs) = lanes(1, 1 << 16);
        drop(ws);
        let staged = Staged::default();
        staged.stage_readers(rs);
        let (w, r) = tokio::io::duplex(1 << 16);
        let mut writer = FrameWriter::new(w);
        let mut forged = switch_frame(5, 1);
        forged.header.src = 3;
        writer.write_frame(&forged).await.unwrap();
        let mut reader =
            LaneReader::new(FrameReader::new(r, 1 << 20), 1 << 20).switchable(5, staged);
        assert!(matches!(
            reader.read_frame().await,
            Err(ReadError::Lanes(_))
        ));
    }

    /// A context below the agent can make the host answer it dead on the
    /// switch's handle (by naming that handle as its reply handle): that
    /// frame passes the host's writer, which holds staged lanes, and the
    /// agent's reader as any frame, and switches nothing.
    #[tokio::test]
    async fn a_dead_reply_on_the_switch_handle_is_an_ordinary_frame_at_both_ends() {
        let (w0, r0) = tokio::io::duplex(1 << 20);
        let (ws, rs) = lanes(2, 1 << 20);
        let out = Staged::default();
        out.stage_writers(ws);
        let mut writer = LaneWriter::new(FrameWriter::new(w0), 5, out);
        let into = Staged::default();
        into.stage_readers(rs);
        let mut reader =
            LaneReader::new(FrameReader::new(r0, 1 << 20), 1 << 20).switchable(5, into);
        // For the agent's child (9), and for the agent itself.
        for dst in [9, 5] {
            let dead = Frame::dead(0, dst, proto::message::handle::LANES_SWITCH, "no handle");
            writer.write_frame(&dead).await.unwrap();
            writer.write_frame(&data(1)).await.unwrap();
            writer.flush().await.unwrap();
            assert_eq!(reader.read_frame().await.unwrap(), Some(dead));
            assert_eq!(reader.read_frame().await.unwrap(), Some(data(1)));
        }
        // The real switch still finds its lanes at both ends.
        writer.write_frame(&switch_frame(5, 2)).await.unwrap();
        for n in 0..6 {
            writer.write_frame(&data(n)).await.unwrap();
        }
        for n in 0..6 {
            assert_eq!(reader.read_frame().await.unwrap(), Some(data(n)));
        }
    }
}
