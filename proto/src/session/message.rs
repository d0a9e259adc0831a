//! What a session says on the wire, as types.
//!
//! A shim opens a session with a [`SessionRequest`] to the host; the host
//! asks the agent that serves the hostname to run it with a
//! [`SpawnRequest`]. From then on the client end (the shim, or the host for
//! what the shim handed over) sends [`ToCommand`] messages and the command
//! end (the agent) answers with [`ToClient`] messages. Bulk data travels as
//! raw-bytes frames, everything else as CBOR.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::frame::{Encoding, Frame, Header};
use crate::message::{ContextId, Handle, PayloadError, handle};

/// A frame that is not the session message it should be.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("a frame for handle {0} does not belong to a session")]
    UnexpectedHandle(Handle),
    #[error("a frame for handle {0} carries CBOR where data belongs")]
    ExpectedData(Handle),
    #[error("the first frame has handle {0}, not a session request")]
    NotARequest(Handle),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// The header of every session frame: from `src`, with its own authority.
pub fn header(dst: ContextId, src: ContextId, handle: Handle) -> Header {
    Header {
        dst,
        src,
        auth: src,
        handle,
        reply_to: 0,
    }
}

/// What a session runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RemoteCommand {
    /// `$SHELL -c <command>`: ssh's argv words joined by single spaces, as
    /// bytes (a file name need not be UTF-8; OpenSSH passes any byte on).
    Exec(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A named subsystem such as `sftp`.
    Subsystem(String),
    /// An interactive login shell.
    Shell,
    /// A TCP connection from the agent to `host:port`, relayed as the
    /// session's stdin and stdout: how an ssh hop is reached through the
    /// hop before it, and what `ssh -L`, `-D` and `-W` ask for. `greeting`
    /// goes down first once connected (a SOCKS proxy's reply).
    TcpConnect {
        host: String,
        port: u16,
        #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
        greeting: Vec<u8>,
    },
    /// A connection to a Unix socket on the far side (`ssh -L port:/path`).
    UnixConnect { path: String },
    /// A listener on the far side (`ssh -R`): [`SessionEvent::Listening`]
    /// says where, [`SessionEvent::Accepted`] each connection; it lives as
    /// long as the session.
    Listen(ListenAddress),
    /// A connection one of this client's listeners accepted (its token
    /// from [`SessionEvent::Accepted`]), relayed as stdin and stdout.
    TakeAccepted { token: u64 },
    /// `ssh -O`: a ControlMaster request, answered by the host about the
    /// context that serves the destination (never sent to an agent).
    Master { command: MasterCommand, quiet: bool },
}

/// The `ssh -O` commands the host answers as a ControlMaster would.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum MasterCommand {
    /// Is the context up?
    Check,
    /// End the context.
    Exit,
    /// Stop taking sessions: here, end the context too.
    Stop,
}

/// Where a far-side listener listens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ListenAddress {
    /// A TCP port (0: any free one) on `bind`: loopback if `None`, every
    /// interface if empty or `*`.
    Tcp { bind: Option<String>, port: u16 },
    /// A Unix socket path.
    Unix(String),
}

impl RemoteCommand {
    /// Whether this is a byte stream rather than a command.
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            RemoteCommand::TcpConnect { .. }
                | RemoteCommand::UnixConnect { .. }
                | RemoteCommand::Listen(_)
                | RemoteCommand::TakeAccepted { .. }
        )
    }
}

impl std::fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteCommand::Exec(line) => write!(f, "{:?}", String::from_utf8_lossy(line)),
            RemoteCommand::Subsystem(name) => write!(f, "subsystem {name}"),
            RemoteCommand::Shell => write!(f, "a login shell"),
            RemoteCommand::TcpConnect { host, port, .. } => {
                write!(f, "a connection to {host}:{port}")
            }
            RemoteCommand::UnixConnect { path } => write!(f, "a connection to {path}"),
            RemoteCommand::Listen(ListenAddress::Tcp { bind, port }) => {
                write!(
                    f,
                    "a listener on {}:{port}",
                    bind.as_deref().unwrap_or("localhost")
                )
            }
            RemoteCommand::Listen(ListenAddress::Unix(path)) => write!(f, "a listener on {path}"),
            RemoteCommand::TakeAccepted { token } => write!(f, "accepted connection {token:x}"),
            RemoteCommand::Master { command, .. } => write!(f, "ssh -O {command:?}"),
        }
    }
}

/// A pseudo-terminal for a session (`ssh -t`), with the client's window size.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PtyRequest {
    pub cols: u16,
    pub rows: u16,
}

/// Shim to host: the session the shim wants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRequest {
    /// The destination as the client named it.
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub command: RemoteCommand,
    /// Variables the client asked to send (SendEnv/SetEnv), already filtered.
    pub env: Vec<(String, String)>,
    /// A pty for the command (`-t`); `TERM` then travels in `env`.
    pub pty: Option<PtyRequest>,
    /// The client's `-o` options (with `-i` as IdentityFile and `-J` as
    /// ProxyJump), in order. They configure a connection the host opens on
    /// demand for this hostname, ahead of the ssh config, as on ssh's
    /// command line; a connection that already exists is reused as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_options: Vec<(String, String)>,
    /// The client's `-F FILE` (absolute, or `none`): read instead of the
    /// host's ssh config for that on-demand connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config_file: Option<String>,
    /// `ssh -A`: the command gets an `SSH_AUTH_SOCK` whose connections come
    /// back as [`SessionEvent::Accepted`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_agent: bool,
}

/// Host to agent: run `command` for the client end `peer`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpawnRequest {
    pub peer: ContextId,
    pub command: RemoteCommand,
    pub env: Vec<(String, String)>,
    pub pty: Option<PtyRequest>,
    /// See [`SessionRequest::forward_agent`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_agent: bool,
}

/// Which output stream a credit or an EOF is about.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    /// 0 for stdout, 1 for stderr: an index into per-stream arrays.
    pub fn index(self) -> usize {
        match self {
            OutputStream::Stdout => 0,
            OutputStream::Stderr => 1,
        }
    }

    fn data_handle(self) -> Handle {
        match self {
            OutputStream::Stdout => handle::SESSION_STDOUT,
            OutputStream::Stderr => handle::SESSION_STDERR,
        }
    }
}

/// Client end to command end, besides stdin data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SessionControl {
    /// The client's stdin reached EOF: close the command's stdin.
    Eof,
    /// The command end may send `bytes` more of `stream`: the client wrote
    /// that much out (less what it keeps back to lower the window), or
    /// gives back what it kept.
    Credit { stream: OutputStream, bytes: u32 },
    /// Nobody reads `stream` any more: close the command's end (it gets SIGPIPE).
    OutputClosed(OutputStream),
    /// Deliver a signal (by number) to the command's process group.
    Signal(i32),
    /// The client's terminal changed size (pty sessions).
    WindowChange(PtyRequest),
    /// The client went away: kill the command.
    Close,
    /// The client raised `stream`'s window by `bytes`: the command end may
    /// have that much more in flight (up to `MAX_SESSION_WINDOW` in all).
    GrowWindow { stream: OutputStream, bytes: u32 },
    /// The client asks for stdin's window to be `window` bytes: its stdin
    /// is window-bound on a long path. The command end decides (at most
    /// `MAX_SESSION_WINDOW`, never lowered) and answers what it grew with
    /// [`SessionEvent::StdinWindow`].
    GrowStdin { window: u32 },
}

/// How the remote command ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal { signal: i32, core_dumped: bool },
}

/// Command end to client end, besides output data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SessionEvent {
    /// The command end wrote `bytes` of stdin out; send that much more.
    StdinCredit(u32),
    /// The command end raised stdin's window by this much (an answer to
    /// [`SessionControl::GrowStdin`]): that much more may be in flight.
    StdinWindow(u32),
    /// No more data will come on this stream.
    Eof(OutputStream),
    /// The command ended; always the last event.
    Exit(ExitStatus),
    /// The session failed; the text says where and why.
    Error(String),
    /// A far-side listener is up, on this port (0 for a Unix socket).
    Listening { port: u16 },
    /// A far-side listener accepted a connection: take it with
    /// [`RemoteCommand::TakeAccepted`] and this token.
    Accepted { token: u64 },
}

/// A message for the command end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToCommand {
    Stdin(Bytes),
    Control(SessionControl),
}

/// A message for the client end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToClient {
    Output(OutputStream, Bytes),
    Event(SessionEvent),
    /// A dead message: the session's frames could not be delivered.
    Dead(String),
}

fn expect_bytes(frame: &Frame) -> Result<Bytes, DecodeError> {
    match frame.encoding {
        Encoding::Bytes => Ok(frame.payload.clone()),
        Encoding::Cbor => Err(DecodeError::ExpectedData(frame.header.handle)),
    }
}

impl ToCommand {
    /// The message a frame for the command end carries.
    pub fn from_frame(frame: &Frame) -> Result<ToCommand, DecodeError> {
        match frame.header.handle {
            handle::SESSION_STDIN => Ok(ToCommand::Stdin(expect_bytes(frame)?)),
            handle::SESSION_CONTROL => {
                Ok(ToCommand::Control(frame.decode_cbor("session control")?))
            }
            other => Err(DecodeError::UnexpectedHandle(other)),
        }
    }

    /// The frame that carries this message from `src` to `dst`.
    pub fn to_frame(&self, dst: ContextId, src: ContextId) -> Frame {
        match self {
            ToCommand::Stdin(data) => {
                Frame::data(header(dst, src, handle::SESSION_STDIN), data.clone())
            }
            ToCommand::Control(c) => Frame::cbor(header(dst, src, handle::SESSION_CONTROL), c),
        }
    }
}

impl ToClient {
    /// The message a frame for the client end carries.
    pub fn from_frame(frame: &Frame) -> Result<ToClient, DecodeError> {
        if frame.is_dead() {
            return Ok(ToClient::Dead(frame.dead_reason()));
        }
        match frame.header.handle {
            handle::SESSION_STDOUT => {
                Ok(ToClient::Output(OutputStream::Stdout, expect_bytes(frame)?))
            }
            handle::SESSION_STDERR => {
                Ok(ToClient::Output(OutputStream::Stderr, expect_bytes(frame)?))
            }
            handle::SESSION_EVENT => Ok(ToClient::Event(frame.decode_cbor("session event")?)),
            other => Err(DecodeError::UnexpectedHandle(other)),
        }
    }

    /// The frame that carries this message from `src` to `dst`.
    pub fn to_frame(&self, dst: ContextId, src: ContextId) -> Frame {
        match self {
            ToClient::Output(stream, data) => {
                Frame::data(header(dst, src, stream.data_handle()), data.clone())
            }
            ToClient::Event(e) => Frame::cbor(header(dst, src, handle::SESSION_EVENT), e),
            ToClient::Dead(reason) => Frame::dead(src, dst, handle::SESSION_EVENT, reason),
        }
    }
}

impl SessionRequest {
    /// The request a shim's first frame carries.
    pub fn from_frame(frame: &Frame) -> Result<SessionRequest, DecodeError> {
        match frame.header.handle {
            handle::SESSION_OPEN => Ok(frame.decode_cbor("session request")?),
            other => Err(DecodeError::NotARequest(other)),
        }
    }
}

/// The data-frame header for `stream` from the command end.
pub fn output_header(stream: OutputStream, client: ContextId, command: ContextId) -> Header {
    header(client, command, stream.data_handle())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_frames() {
        for msg in [
            ToCommand::Stdin(Bytes::from_static(b"abc")),
            ToCommand::Control(SessionControl::Credit {
                stream: OutputStream::Stderr,
                bytes: 7,
            }),
            ToCommand::Control(SessionControl::Signal(2)),
        ] {
            let frame = msg.to_frame(1, 1 << 24);
            assert_eq!(frame.header.auth, 1 << 24);
            assert_eq!(ToCommand::from_frame(&frame).unwrap(), msg);
        }
        for msg in [
            ToClient::Output(OutputStream::Stdout, Bytes::from_static(b"out")),
            ToClient::Output(OutputStream::Stderr, Bytes::from_static(b"err")),
            ToClient::Event(SessionEvent::Exit(ExitStatus::Code(3))),
            ToClient::Dead("no route".into()),
        ] {
            let frame = msg.to_frame(1 << 24, 1);
            assert_eq!(ToClient::from_frame(&frame).unwrap(), msg);
        }
    }

    #[test]
    fn frames_of_the_wrong_kind_are_refused() {
        let stdout = ToClient::Output(OutputStream::Stdout, Bytes::new()).to_frame(5, 1);
        assert!(matches!(
            ToCommand::from_frame(&stdout),
            Err(DecodeError::UnexpectedHandle(_))
        ));
        let mut cbor_stdin = ToCommand::Control(SessionControl::Eof).to_frame(1, 5);
        cbor_stdin.header.handle = handle::SESSION_STDIN;
        assert!(matches!(
            ToCommand::from_frame(&cbor_stdin),
            Err(DecodeError::ExpectedData(_))
        ));
        assert!(SessionRequest::from_frame(&stdout).is_err());
    }
}
