//! Replays the checked-in fuzz corpus (and seeds it): the decoders must
//! handle every stored input without panicking.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use router::frame::{Frame, Header};
use router::fuzzing;
use router::hop::Hop;
use router::message::{ConnectRequest, Secret};
use router::session::{PtyRequest, RemoteCommand, SessionControl, SessionRequest};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        run(&data);
        n += 1;
    }
    n
}

/// Seeds: real frames and payloads. Written when
/// MITOGEN_FAKESSH_UPDATE_CORPUS is set, checked always.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let request = SessionRequest {
        host: "web1".into(),
        user: Some("deploy".into()),
        port: Some(2222),
        command: RemoteCommand::Exec(b"rsync --server -logDtpre.iLsfxCIvu . /srv/app/".to_vec()),
        env: vec![("GIT_PROTOCOL".into(), "version=2".into())],
        pty: Some(PtyRequest { cols: 80, rows: 24 }),
        ssh_options: Vec::new(),
        ssh_config_file: None,
        forward_agent: false,
    };
    let connect = ConnectRequest {
        new_id: 2,
        hop: Hop::Sudo {
            user: "root".into(),
        },
        name: "ssh:web1,sudo:root".into(),
        log_level: 1,
        password: Some(Secret("not-a-real-password".into())),
        agent_dir: None,
    };
    let frame = |f: Frame| {
        let mut b = BytesMut::new();
        f.encode_into(&mut b);
        b.to_vec()
    };
    let h = Header {
        dst: 1,
        src: 0,
        auth: 0,
        handle: 111,
        reply_to: 1000,
    };
    vec![
        (
            "frame_decoder",
            "session-open",
            frame(Frame::cbor(h, &request)),
        ),
        (
            "frame_decoder",
            "data-then-garbage",
            [
                frame(Frame::data(h, Bytes::from_static(b"stdin bytes"))),
                b"junk".to_vec(),
            ]
            .concat(),
        ),
        (
            "frame_decoder",
            "bad-magic",
            b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
        ),
        (
            "frame_decoder",
            "huge-length",
            [b"MC".to_vec(), vec![0; 20], vec![0xff; 4]].concat(),
        ),
        (
            "payloads",
            "session-request",
            frame(Frame::cbor(h, &request))[26..].to_vec(),
        ),
        (
            "payloads",
            "connect-request",
            frame(Frame::cbor(h, &connect))[26..].to_vec(),
        ),
        (
            "payloads",
            "control-credit",
            frame(Frame::cbor(
                h,
                &SessionControl::Credit {
                    stream: router::session::OutputStream::Stdout,
                    bytes: 65536,
                },
            ))[26..]
                .to_vec(),
        ),
        ("payloads", "truncated-cbor", vec![0xa6, 0x64, 0x68, 0x6f]),
    ]
}

#[test]
fn corpus_is_seeded() {
    for (target, name, data) in seeds() {
        let path = corpus(target).join(name);
        if std::env::var_os("MITOGEN_FAKESSH_UPDATE_CORPUS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        assert!(
            path.exists(),
            "seed {} missing; regenerate with MITOGEN_FAKESSH_UPDATE_CORPUS=1 cargo test -p router --test fuzz_corpus",
            path.display()
        );
    }
}

#[test]
fn frame_decoder_corpus() {
    assert!(replay("frame_decoder", fuzzing::frame_decoder) >= 4);
}

#[test]
fn payloads_corpus() {
    assert!(replay("payloads", fuzzing::payloads) >= 4);
}
