//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus
//! replay tests: each takes arbitrary bytes and must never panic.

use bytes::BytesMut;

use crate::frame::{Encoding, Frame, Header};
use crate::hop::Hop;
use crate::message::{AgentConfig, ConnectRequest, RouteUpdate};
use crate::session::{
    ClientSession, CommandSession, SessionControl, SessionEvent, SessionRequest, SpawnRequest,
    ToCommand,
};

/// Decode frames from `data` until an error or the need for more bytes.
pub fn frame_decoder(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = Frame::decode(&mut buf, 1 << 16) {
        // Whatever decoded must encode back to the same bytes.
        let mut again = BytesMut::new();
        frame.encode_into(&mut again);
        assert_eq!(
            Frame::decode(&mut again, 1 << 16).ok().flatten().as_ref(),
            Some(&frame)
        );
    }
}

/// Decode `data` as every CBOR payload a peer can send us.
pub fn payloads(data: &[u8]) {
    let frame = Frame {
        header: Header::default(),
        encoding: Encoding::Cbor,
        payload: bytes::Bytes::copy_from_slice(data),
    };
    let _ = frame.decode_cbor::<SessionRequest>("session request");
    let _ = frame.decode_cbor::<SpawnRequest>("spawn request");
    let _ = frame.decode_cbor::<ConnectRequest>("connect request");
    let _ = frame.decode_cbor::<SessionControl>("session control");
    let _ = frame.decode_cbor::<SessionEvent>("session event");
    let _ = frame.decode_cbor::<AgentConfig>("agent config");
    let _ = frame.decode_cbor::<RouteUpdate>("route update");
    let _ = frame.decode_cbor::<Hop>("hop");
    // The same bytes as every session message, into both state machines.
    let mut client = ClientSession::local(false);
    let mut command = CommandSession::new(false);
    for handle in [
        crate::message::handle::SESSION_STDOUT,
        crate::message::handle::SESSION_EVENT,
        crate::message::handle::SESSION_STDIN,
        crate::message::handle::SESSION_CONTROL,
    ] {
        for encoding in [Encoding::Cbor, Encoding::Bytes] {
            let mut f = frame.clone();
            f.header.handle = handle;
            f.encoding = encoding;
            let _ = client.on_frame(&f);
            while client.next_action().is_some() {}
            if let Ok(msg) = ToCommand::from_frame(&f) {
                let _ = command.on_message(msg);
            }
        }
    }
}
