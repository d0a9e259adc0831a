//! A byte stream through another context: the agent there opens a TCP
//! connection and serves it as a session (stdin and stdout), under the same
//! credit-based flow control as any shim session. The ssh client then runs
//! over it here, so keys and known_hosts never leave the host.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use router::Router;
use router::client_end::{ClientEnd, ClientSink, Stopped};
use router::frame::Frame;
use router::message::{ContextId, handle};
use router::session::{
    ClientSession, Ending, OutputStream, RemoteCommand, SessionControl, SpawnRequest, ToClient,
    ToCommand,
};
use router::session_link::SessionLink;
use tokio::io::{AsyncWriteExt, DuplexStream, WriteHalf};
use tracing::debug;

/// Why a tunnel ended early, as the far agent reported it.
pub type TunnelError = Arc<Mutex<Option<String>>>;

/// Ask context `via` to connect to `host:port`; returns our end of the stream.
pub async fn open(
    router: &Arc<Router>,
    via: ContextId,
    id: ContextId,
    host: &str,
    port: u16,
) -> (DuplexStream, TunnelError) {
    let name = format!("tunnel {id} to {host}:{port}");
    let (sid, frames) = router.add_session_stream(&name, id).await;
    // Only `via` may answer for this session, from before it is asked.
    router.bind_session(sid, via);
    let (near, far) = tokio::io::duplex(1 << 20);
    let (far_read, far_write) = tokio::io::split(far);
    let error: TunnelError = Arc::default();
    // What the ssh client writes goes out as stdin, under the session's
    // credit; what the far side sends is the ssh client's input.
    let sink = Sink {
        far_write,
        error: error.clone(),
    };
    let end = ClientEnd::new(router.clone(), id, ClientSession::local(false), sink)
        .inbox(sid)
        .watch_agent();
    router
        .send(Frame::cbor(
            router.header(via, handle::SPAWN),
            &SpawnRequest {
                peer: id,
                command: RemoteCommand::TcpConnect {
                    host: host.to_string(),
                    port,
                    greeting: Vec::new(),
                },
                env: Vec::new(),
                pty: None,
                forward_agent: false,
            },
        ))
        .await;
    let end = end.spawned_on(via).stdin(far_read, None);
    let router = router.clone();
    let failed = error.clone();
    tokio::spawn(async move {
        // Nothing but the session's own frames: no news.
        let (_none, news) = tokio::sync::mpsc::channel(1);
        let stopped = end.run(frames, news).await;
        if let Stopped::Lost(reason) = &stopped {
            record(
                &failed,
                format!("the hop it goes through was lost: {reason}"),
            );
        }
        let close = ToCommand::Control(SessionControl::Close);
        SessionLink::client_end(router.clone(), id, via)
            .to_command(&close)
            .await;
        router.remove_stream(sid, "tunnel closed").await;
        debug!("{name} closed ({stopped:?})");
    });
    (near, error)
}

fn record(error: &TunnelError, why: String) {
    if let Ok(mut e) = error.lock() {
        e.get_or_insert(why);
    }
}

/// The tunnel's side of the session: stdout is the ssh client's input;
/// there is no stderr and nobody to pass anything on to.
struct Sink {
    far_write: WriteHalf<DuplexStream>,
    error: TunnelError,
}

impl ClientSink for Sink {
    async fn write(&mut self, stream: OutputStream, data: Bytes) -> bool {
        stream == OutputStream::Stdout && self.far_write.write_all(&data).await.is_ok()
    }

    async fn close(&mut self, stream: OutputStream) {
        if stream == OutputStream::Stdout {
            let _ = self.far_write.shutdown().await;
        }
    }

    async fn forward(&mut self, _msg: ToClient) {}

    async fn finish(&mut self, ending: Ending) {
        if let Ending::Error(why) | Ending::Dead(why) = ending {
            record(&self.error, why);
        }
    }
}
