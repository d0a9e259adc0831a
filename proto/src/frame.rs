//! One frame: a fixed 26-byte big-endian header, then `len` payload bytes.
//!
//! ```text
//! magic u16 | dst u32 | src u32 | auth u32 | handle u32 | reply_to u32 | len u32 | payload
//! ```
//!
//! The magic doubles as the payload encoding (like Mitogen's `enc` field), so
//! a reader never has to guess whether a payload is CBOR or raw data. The
//! decoder is a pure function over a buffer so it can be property-tested and
//! fuzzed: any byte sequence yields a frame, "need more bytes" or an error,
//! never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 26;
/// Magic of a frame whose payload is CBOR ("MC").
pub const MAGIC_CBOR: u16 = 0x4d43;
/// Magic of a frame whose payload is raw bytes ("MB").
pub const MAGIC_BYTES: u16 = 0x4d42;
/// Default largest payload accepted. Data chunks are far smaller; the limit
/// only exists so a corrupt length cannot make a reader allocate gigabytes.
pub const DEFAULT_MAX_PAYLOAD: u32 = 4 << 20;

/// How the payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Cbor,
    Bytes,
}

impl Encoding {
    fn magic(self) -> u16 {
        match self {
            Encoding::Cbor => MAGIC_CBOR,
            Encoding::Bytes => MAGIC_BYTES,
        }
    }
}

/// Addressing part of the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Context the frame is for.
    pub dst: u32,
    /// Context that sent it; replies go here.
    pub src: u32,
    /// Context under whose authority it acts (checked against the stream it arrived on).
    pub auth: u32,
    /// Handle inside `dst` that receives it.
    pub handle: u32,
    /// Handle inside `src` for a reply; 0 for none, `IS_DEAD` marks a dead message.
    pub reply_to: u32,
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub encoding: Encoding,
    pub payload: Bytes,
}

/// Why a byte stream could not be decoded. Either error ends that stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "bad frame magic {0:#06x}: the stream is corrupt or the peer is not a mitogen-fakessh agent"
    )]
    BadMagic(u16),
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
}

impl Frame {
    /// Encode the 26-byte header for this frame.
    pub fn header_bytes(&self) -> [u8; HEADER_LEN] {
        Frame::encode_header(&self.header, self.encoding, self.payload.len())
    }

    /// Encode a header for a payload of `len` bytes that the caller writes
    /// itself (so bulk data need not be copied into a `Frame` first).
    pub fn encode_header(header: &Header, encoding: Encoding, len: usize) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = &mut out[..];
        w.put_u16(encoding.magic());
        w.put_u32(header.dst);
        w.put_u32(header.src);
        w.put_u32(header.auth);
        w.put_u32(header.handle);
        w.put_u32(header.reply_to);
        w.put_u32(len as u32);
        out
    }

    /// Append the whole frame to `out` (used by tests and blocking writers).
    pub fn encode_into(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + self.payload.len());
        out.put_slice(&self.header_bytes());
        out.put_slice(&self.payload);
    }

    /// Try to take one frame off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame. The payload is
    /// split off without copying. An error leaves `buf` unspecified: the caller
    /// must drop the stream.
    pub fn decode(buf: &mut BytesMut, max_payload: u32) -> Result<Option<Frame>, FrameError> {
        if buf.len() >= 2 {
            let magic = u16::from_be_bytes([buf[0], buf[1]]);
            if magic != MAGIC_CBOR && magic != MAGIC_BYTES {
                return Err(FrameError::BadMagic(magic));
            }
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut h = &buf[..HEADER_LEN];
        let magic = h.get_u16();
        let header = Header {
            dst: h.get_u32(),
            src: h.get_u32(),
            auth: h.get_u32(),
            handle: h.get_u32(),
            reply_to: h.get_u32(),
        };
        let len = h.get_u32();
        if len > max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: max_payload,
            });
        }
        let total = HEADER_LEN + len as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len as usize).freeze();
        let encoding = if magic == MAGIC_CBOR {
            Encoding::Cbor
        } else {
            Encoding::Bytes
        };
        Ok(Some(Frame {
            header,
            encoding,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(payload: &[u8]) -> Frame {
        Frame {
            header: Header {
                dst: 1,
                src: 2,
                auth: 3,
                handle: 4,
                reply_to: 5,
            },
            encoding: Encoding::Bytes,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn round_trip_and_partial() {
        let f = sample(b"hello");
        let mut buf = BytesMut::new();
        f.encode_into(&mut buf);
        let mut part = BytesMut::from(&buf[..10]);
        assert_eq!(Frame::decode(&mut part, 100), Ok(None));
        assert_eq!(Frame::decode(&mut buf, 100), Ok(Some(f)));
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_magic_is_an_error() {
        let mut buf = BytesMut::from(&b"SSH-2.0-OpenSSH_9.2\r\n"[..]);
        assert_eq!(
            Frame::decode(&mut buf, 100),
            Err(FrameError::BadMagic(0x5353))
        );
    }

    #[test]
    fn oversized_length_is_an_error_before_buffering() {
        let mut buf = BytesMut::new();
        sample(&[0u8; 64]).encode_into(&mut buf);
        let err = Frame::decode(&mut buf, 63).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 64, max: 63 });
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            // Drain frames until error or need-more; must terminate without panic.
            for _ in 0..600 {
                match Frame::decode(&mut buf, 256) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn round_trips(dst: u32, src: u32, auth: u32, handle: u32, reply_to: u32,
                       cbor: bool, payload in proptest::collection::vec(any::<u8>(), 0..2048),
                       split in 0usize..4096) {
            let f = Frame {
                header: Header { dst, src, auth, handle, reply_to },
                encoding: if cbor { Encoding::Cbor } else { Encoding::Bytes },
                payload: Bytes::from(payload),
            };
            let mut all = BytesMut::new();
            f.encode_into(&mut all);
            let split = split.min(all.len());
            let mut buf = BytesMut::from(&all[..split]);
            let first = Frame::decode(&mut buf, 4096).unwrap();
            if split < all.len() {
                prop_assert!(first.is_none());
                buf.extend_from_slice(&all[split..]);
                prop_assert_eq!(Frame::decode(&mut buf, 4096).unwrap(), Some(f));
            } else {
                prop_assert_eq!(first, Some(f));
            }
        }
    }
}
