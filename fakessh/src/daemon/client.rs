//! Talking to a running daemon: connect to its socket (only if its
//! directory is a private one of ours and it listens as our uid: see
//! [`shims::trust`]), wait for its welcome, send one control request, read
//! the JSON answer.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use router::control::{REPLY_MAX, Reply, Request};
use shims::trust::ReachError;

use super::report::DaemonStatus;

/// How long a daemon may take to answer (a stop ends every context first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no mitogen-fakessh daemon at {} ({source}); start one: eval \"$(mitogen-fakessh start)\"",
        .socket.display()
    )]
    NoDaemon {
        socket: std::path::PathBuf,
        source: nix::Error,
    },
    #[error("{0}; not asking it anything")]
    Distrusted(shims::trust::ReachError),
    #[error("the daemon at {} refused: {why}", .socket.display())]
    Refused {
        socket: std::path::PathBuf,
        why: String,
    },
    #[error("the daemon at {} did not answer: {why}", .socket.display())]
    NoAnswer {
        socket: std::path::PathBuf,
        why: String,
    },
}

/// Ask the daemon at `socket` for its status, or (`stop`) to stop.
pub fn ask(socket: &Path, stop: bool) -> Result<DaemonStatus, ClientError> {
    let no_answer = |why: String| ClientError::NoAnswer {
        socket: socket.to_path_buf(),
        why,
    };
    let trusted = shims::trust::Trusted::me_only();
    let fd = shims::trust::connect_trusted(socket, &trusted).map_err(|e| match e {
        ReachError::Connect(source) => ClientError::NoDaemon {
            socket: socket.to_path_buf(),
            source,
        },
        distrusted @ ReachError::Distrusted { .. } => ClientError::Distrusted(distrusted),
    })?;
    shims::control::await_welcome(fd.as_fd()).map_err(|why| ClientError::Refused {
        socket: socket.to_path_buf(),
        why: why.to_string(),
    })?;
    let request = if stop { Request::Stop } else { Request::Status }.encode();
    nix::sys::socket::send(
        fd.as_raw_fd(),
        &request,
        nix::sys::socket::MsgFlags::empty(),
    )
    .map_err(|e| no_answer(e.to_string()))?;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = ANSWER_TIMEOUT.as_millis() as i32;
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
    ) {
        Ok(0) => return Err(no_answer("timed out".into())),
        Ok(_) => {}
        Err(e) => return Err(no_answer(e.to_string())),
    }
    let mut buf = vec![0u8; REPLY_MAX];
    let n = nix::sys::socket::recv(
        fd.as_raw_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::empty(),
    )
    .map_err(|e| no_answer(e.to_string()))?;
    let json = Reply::parse(&buf[..n]).map_err(|e| no_answer(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| no_answer(e.to_string()))?;
    if let Some(why) = value.get("error").and_then(|e| e.as_str()) {
        return Err(ClientError::Refused {
            socket: socket.to_path_buf(),
            why: why.to_string(),
        });
    }
    serde_json::from_value(value).map_err(|e| no_answer(e.to_string()))
}
