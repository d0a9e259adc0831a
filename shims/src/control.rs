//! Finding the host and handing it a session: the control socket the host
//! left open across exec, or its fallback socket for a shim whose inherited
//! descriptor a program on the way closed (Python's subprocess does).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessage, MsgFlags};
use proto::control::{GREETING_MAX, Greeting, Request};

use crate::error::{ShimError, WelcomeError};
use crate::stdio::Handover;
use crate::trust::ReachError;
use crate::{env, sys};

/// The way to the host.
pub enum Control {
    /// The socket the host left open across exec (fd number in the environment).
    Inherited(BorrowedFd<'static>),
    /// Its fallback socket.
    Connected(OwnedFd, String),
}

impl Control {
    /// Find the host: the inherited socket, else the fallback socket.
    pub fn find() -> Result<Control, ShimError> {
        let inherited = match std::env::var(env::CONTROL_FD) {
            Ok(text) => text
                .parse::<i32>()
                .map_err(|_| ShimError::BadFdNumber(text))
                .and_then(|fd| Ok(sys::inherited_control_socket(fd)?)),
            Err(_) => Err(ShimError::NotUnderHost),
        };
        let why = match inherited {
            Ok(fd) => return Ok(Control::Inherited(fd)),
            Err(why) => why,
        };
        let Some(path) = std::env::var_os(env::CONTROL_PATH) else {
            return Err(why);
        };
        let shown = std::path::Path::new(&path).display().to_string();
        let fd = crate::trust::connect_trusted(std::path::Path::new(&path), &host_uids()).map_err(
            |e| match e {
                ReachError::Connect(source) => ShimError::Unreachable {
                    inherited: Box::new(why),
                    path: shown.clone(),
                    source,
                },
                distrusted @ ReachError::Distrusted { .. } => ShimError::Distrusted(distrusted),
            },
        )?;
        await_welcome(fd.as_fd()).map_err(|why| ShimError::Fallback {
            path: shown.clone(),
            why,
        })?;
        Ok(Control::Connected(fd, shown))
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Control::Inherited(fd) => *fd,
            Control::Connected(fd, _) => fd.as_fd(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Control::Inherited(fd) => format!("fd {}", fd.as_raw_fd()),
            Control::Connected(_, path) => path.clone(),
        }
    }

    /// Send the session socket, and the standard descriptors the host is to
    /// serve: one SEQPACKET message per session.
    pub fn pass_session(&self, sock: &OwnedFd, handover: Handover) -> Result<(), ShimError> {
        let mut fds = vec![sock.as_raw_fd()];
        fds.extend(handover.fds());
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let hello = Request::Session(handover.announced()).encode();
        let iov = [std::io::IoSlice::new(&hello)];
        loop {
            match sys::send_without_sigpipe(self.as_fd(), &iov, &cmsg) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(source) => {
                    return Err(ShimError::Handover {
                        via: self.describe(),
                        source,
                    });
                }
            }
        }
    }
}

/// The uids whose listener a shim believes: its own, root's (root can do
/// anything to us anyway) and, if the shim is root (it went through sudo,
/// su or doas), the uid the host named in [`env::CONTROL_UID`].
fn host_uids() -> crate::trust::Trusted {
    let mut also = vec![0];
    if nix::unistd::geteuid().is_root()
        && let Some(uid) = std::env::var(env::CONTROL_UID)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
    {
        also.push(uid);
    }
    crate::trust::Trusted::me_and(also)
}

/// How long the host may take to answer a connection on its fallback
/// socket. It answers at once unless it is wedged; this only bounds a hang.
const WELCOME_TIMEOUT_MS: u16 = 30_000;

/// Read the host's greeting on a fresh fallback connection: a welcome, or
/// the reason it refuses us.
/// Block until the host is gone (its end of our connection closes): how
/// `ssh -N` knows its forwards are over.
pub fn wait_until_host_gone() {
    let Ok(control) = Control::find() else {
        return;
    };
    let mut fds = [PollFd::new(control.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                    return;
                }
                // Data nobody asked for: the host is not what we think.
                if revents.contains(PollFlags::POLLIN) {
                    return;
                }
            }
        }
    }
}

/// Wait for the host's greeting on a socket-path connection.
pub fn await_welcome(fd: BorrowedFd<'_>) -> Result<(), WelcomeError> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::from(WELCOME_TIMEOUT_MS)) {
            Ok(0) => return Err(WelcomeError::Timeout),
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(WelcomeError::Poll(e)),
        }
    }
    let mut buf = [0u8; GREETING_MAX];
    let n = loop {
        match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(WelcomeError::Closed(e)),
            Ok(n) => break n,
        }
    };
    match Greeting::parse(&buf[..n])? {
        Greeting::Welcome => Ok(()),
        Greeting::Refused(why) => Err(WelcomeError::Refused(why)),
    }
}
