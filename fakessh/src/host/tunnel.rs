//! A byte stream through another context: the agent there opens a TCP
//! connection and relays it as a session, under the same credit-based flow
//! control as any shim session. The ssh client then runs over it here.

use std::sync::{Arc, Mutex};

use router_core::Router;
use router_core::frame::{Frame, Header};
use router_core::message::{
    ContextId, OutputStream, RemoteCommand, SESSION_WINDOW, SessionControl, SessionEvent,
    SpawnRequest, handle,
};
use router_core::pump::{SendWindow, pump_to_frames};
use router_core::router::{RouterEvent, StreamRole};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tracing::debug;

/// Why a tunnel ended early, as the far agent reported it.
pub type TunnelError = Arc<Mutex<Option<String>>>;

/// Ask context `via` to connect to `host:port`; returns our end of the stream.
pub fn open(
    router: &Arc<Router>,
    via: ContextId,
    id: ContextId,
    host: &str,
    port: u16,
) -> (DuplexStream, TunnelError) {
    let name = format!("tunnel {id} to {host}:{port}");
    let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
    let sid = router.add_stream(&name, id, StreamRole::Child, tx);
    let mut events = router.subscribe();
    router.send(Frame::cbor(
        router.header(via, handle::SPAWN),
        &SpawnRequest {
            peer: id,
            command: RemoteCommand::TcpConnect {
                host: host.to_string(),
                port,
            },
            env: Vec::new(),
            pty: None,
        },
    ));
    let (near, far) = tokio::io::duplex(1 << 20);
    let (far_read, mut far_write) = tokio::io::split(far);
    let window = SendWindow::new(SESSION_WINDOW);
    let error: TunnelError = Arc::default();
    let to_agent = move |h| Header {
        dst: via,
        src: id,
        auth: id,
        handle: h,
        reply_to: 0,
    };

    // Uplink: what the ssh client writes goes out as stdin, under credit.
    let uplink = {
        let router = router.clone();
        let window = window.clone();
        tokio::spawn(async move {
            let _ =
                pump_to_frames(far_read, &window, &router, to_agent(handle::SESSION_STDIN)).await;
            router.send(Frame::cbor(
                to_agent(handle::SESSION_CONTROL),
                &SessionControl::Eof,
            ));
        })
    };

    // Downlink: the connection's bytes, and the session's events.
    let router = router.clone();
    let err = error.clone();
    tokio::spawn(async move {
        let fail = |why: String| {
            if let Ok(mut e) = err.lock() {
                e.get_or_insert(why);
            }
        };
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(f) = frame else { break };
                    match f.header.handle {
                        handle::SESSION_STDOUT => {
                            let n = f.payload.len() as u32;
                            if far_write.write_all(&f.payload).await.is_err() {
                                break;
                            }
                            router.send(Frame::cbor(
                                to_agent(handle::SESSION_CONTROL),
                                &SessionControl::Credit { stream: OutputStream::Stdout, bytes: n },
                            ));
                        }
                        handle::SESSION_EVENT => match f.decode_cbor::<SessionEvent>("session event") {
                            Ok(SessionEvent::StdinCredit(n)) => window.grant(n),
                            Ok(SessionEvent::Eof(OutputStream::Stdout)) => {
                                let _ = far_write.shutdown().await;
                            }
                            Ok(SessionEvent::Eof(_)) => {}
                            Ok(SessionEvent::Exit(_)) => break,
                            Ok(SessionEvent::Error(e)) => {
                                fail(e);
                                break;
                            }
                            Err(e) => {
                                fail(e.to_string());
                                break;
                            }
                        },
                        _ => {}
                    }
                }
                ev = events.recv() => match ev {
                    Some(RouterEvent::ContextLost { context, reason }) if context == via => {
                        fail(format!("the hop it goes through was lost: {reason}"));
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        debug!("{name} closed");
        window.close();
        uplink.abort();
        router.send(Frame::cbor(
            to_agent(handle::SESSION_CONTROL),
            &SessionControl::Close,
        ));
        router.remove_stream(sid, "tunnel closed");
    });
    (near, error)
}
