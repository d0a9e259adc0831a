//! A byte stream through another context: the agent there opens a TCP
//! connection and serves it as a session (stdin and stdout), under the same
//! credit-based flow control as any shim session. The ssh client then runs
//! over it here, so keys and known_hosts never leave the host.

use std::sync::{Arc, Mutex};

use router_core::Router;
use router_core::frame::Frame;
use router_core::message::{ContextId, handle};
use router_core::pump::{SendWindow, pump_to_frames};
use router_core::router::{FrameInbox, RouterEvent, StreamId};
use router_core::session::{
    self, ClientAction, ClientSession, Ending, OutputStream, RemoteCommand, SESSION_WINDOW,
    SessionControl, SpawnRequest, ToCommand,
};
use tokio::io::{AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
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
    let events = router.subscribe();
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
    let (near, far) = tokio::io::duplex(1 << 20);
    let (far_read, far_write) = tokio::io::split(far);
    let window = SendWindow::new(SESSION_WINDOW);
    let error: TunnelError = Arc::default();

    // Uplink: what the ssh client writes goes out as stdin, under credit.
    let mut tasks = JoinSet::new();
    {
        let router = router.clone();
        let window = window.clone();
        tasks.spawn(async move {
            let header = session::header(via, id, handle::SESSION_STDIN);
            let _ = pump_to_frames(far_read, &window, &router, header).await;
            let eof = ToCommand::Control(SessionControl::Eof);
            router.send(eof.to_frame(via, id)).await;
        });
    }
    let downlink = Downlink {
        router: router.clone(),
        sid,
        via,
        id,
        window,
        far_write,
        error: error.clone(),
    };
    tokio::spawn(async move {
        downlink.run(frames, events).await;
        // The uplink goes with it.
        drop(tasks);
        debug!("{name} closed");
    });
    (near, error)
}

/// The connection's bytes and the session's events, driven through the
/// client end's state machine.
struct Downlink {
    router: Arc<Router>,
    sid: StreamId,
    via: ContextId,
    id: ContextId,
    window: SendWindow,
    far_write: WriteHalf<DuplexStream>,
    error: TunnelError,
}

impl Downlink {
    fn fail(&self, why: String) {
        if let Ok(mut e) = self.error.lock() {
            e.get_or_insert(why);
        }
    }

    async fn run(
        mut self,
        mut frames: FrameInbox,
        mut events: tokio::sync::broadcast::Receiver<RouterEvent>,
    ) {
        let mut session = ClientSession::local(false);
        'session: loop {
            tokio::select! {
                frame = frames.recv() => {
                    let Some(frame) = frame else { break };
                    let taken = session.on_frame(&frame);
                    if let Err(e) = taken {
                        self.fail(e.to_string());
                        break;
                    }
                }
                event = events.recv() => match event {
                    Ok(RouterEvent::ContextLost { context, reason }) if context == self.via => {
                        self.fail(format!("the hop it goes through was lost: {reason}"));
                        break;
                    }
                    Err(RecvError::Lagged(_)) if !self.router.has_route(self.via) => {
                        self.fail("the hop it goes through was lost".into());
                        break;
                    }
                    Err(RecvError::Closed) => break,
                    _ => {}
                },
            }
            while let Some(action) = session.next_action() {
                if !self.act(&mut session, action).await {
                    break 'session;
                }
            }
        }
        self.window.close();
        let close = ToCommand::Control(SessionControl::Close);
        self.router.send(close.to_frame(self.via, self.id)).await;
        self.router.remove_stream(self.sid, "tunnel closed").await;
    }

    /// Carry out one action; false when the tunnel is over.
    async fn act(&mut self, session: &mut ClientSession, action: ClientAction) -> bool {
        match action {
            ClientAction::Write { stream, data, cost } => {
                let ok =
                    stream != OutputStream::Stdout || self.far_write.write_all(&data).await.is_ok();
                session.written(stream, cost, ok);
                ok
            }
            ClientAction::CloseOutput(OutputStream::Stdout) => {
                let _ = self.far_write.shutdown().await;
                true
            }
            ClientAction::CloseOutput(_) | ClientAction::Forward(_) => true,
            ClientAction::GrantStdin(n) => match self.window.grant(n) {
                Ok(()) => true,
                Err(e) => {
                    self.fail(e.to_string());
                    false
                }
            },
            ClientAction::Send(control) => {
                let frame = ToCommand::Control(control).to_frame(self.via, self.id);
                self.router.send(frame).await;
                true
            }
            ClientAction::Finish(Ending::Exit(_)) => false,
            ClientAction::Finish(Ending::Error(why) | Ending::Dead(why)) => {
                self.fail(why);
                false
            }
        }
    }
}
