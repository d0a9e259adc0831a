//! Unix sockets and pipes, created close-on-exec, and the peer's uid.
//!
//! Linux creates a descriptor with its flags in the same call
//! (`SOCK_CLOEXEC`, `pipe2`, `accept4`, `MSG_CMSG_CLOEXEC`) and sends
//! without SIGPIPE per call (`MSG_NOSIGNAL`); it names the peer with
//! `SO_PEERCRED`. macOS has none of these: there the flags are set right
//! after the call (a thread forking in between could hand the descriptor to
//! its child, as with OpenSSH on macOS), SIGPIPE is turned off per socket
//! (`SO_NOSIGPIPE`) and the peer is `getpeereid(3)` (`LOCAL_PEERCRED`).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind,
    listen, recvmsg,
};

/// What one `recvmsg` on the control socket produced.
pub enum Received {
    /// A message: its bytes and the descriptors it carried (possibly none).
    Message { bytes: Vec<u8>, fds: Vec<OwnedFd> },
    /// Every holder of the other end has closed it.
    Eof,
}

/// The flags every receive on the control socket takes.
#[cfg(target_os = "linux")]
const RECEIVE_FLAGS: MsgFlags = MsgFlags::MSG_CMSG_CLOEXEC.union(MsgFlags::MSG_DONTWAIT);
#[cfg(not(target_os = "linux"))]
const RECEIVE_FLAGS: MsgFlags = MsgFlags::MSG_DONTWAIT;

/// Receive one SEQPACKET message and the descriptors it carries (at most
/// four: a shim's session socket and its stdin, stdout and stderr).
pub fn recv_fds(sock: BorrowedFd<'_>) -> std::io::Result<Received> {
    let mut bytes = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut bytes)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), RECEIVE_FLAGS)
        .map_err(std::io::Error::from)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel just installed `fd` in our table for this
                // SCM_RIGHTS message; nothing else refers to it, so taking
                // ownership is sound and closes it on drop.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    for fd in &fds {
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(fd)).map_err(std::io::Error::from)?;
    }
    let len = msg.bytes;
    if len == 0 && fds.is_empty() {
        return Ok(Received::Eof);
    }
    Ok(Received::Message {
        bytes: bytes[..len.min(bytes.len())].to_vec(),
        fds,
    })
}

/// A new Unix socket of type `ty`, close-on-exec (and non-blocking if
/// asked).
fn unix_socket(ty: SockType, nonblocking: bool) -> nix::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        let mut flags = SockFlag::SOCK_CLOEXEC;
        if nonblocking {
            flags |= SockFlag::SOCK_NONBLOCK;
        }
        nix::sys::socket::socket(AddressFamily::Unix, ty, flags, None)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let fd = nix::sys::socket::socket(AddressFamily::Unix, ty, SockFlag::empty(), None)?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&fd))?;
        if nonblocking {
            super::flags::set_nonblocking(std::os::fd::AsFd::as_fd(&fd))?;
        }
        Ok(fd)
    }
}

/// A listening SOCK_SEQPACKET socket at `path` (non-blocking, close-on-exec).
pub fn seqpacket_listener(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let fd = unix_socket(SockType::SeqPacket, true)?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(64)?)?;
    Ok(fd)
}

/// A connected pair of SOCK_SEQPACKET sockets, both close-on-exec.
pub fn seqpacket_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (a, b) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::empty(),
        )?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&a))?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&b))?;
        Ok((a, b))
    }
}

/// Accept one connection on `listener`, close-on-exec. (On macOS the new
/// socket also inherits the listener's O_NONBLOCK; its users set the mode
/// they need either way.)
pub fn accept_cloexec(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::socket::accept4(listener, SockFlag::SOCK_CLOEXEC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let fd = nix::sys::socket::accept(listener)?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&fd))?;
        Ok(fd)
    }
}

/// A pipe (read end, write end), both close-on-exec.
pub fn pipe_cloexec() -> nix::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (read, write) = nix::unistd::pipe()?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&read))?;
        super::flags::set_cloexec(std::os::fd::AsFd::as_fd(&write))?;
        Ok((read, write))
    }
}

/// The uid of the process at the other end of a Unix socket.
pub fn peer_uid(fd: BorrowedFd<'_>) -> nix::Result<u32> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials)
            .map(|cred| cred.uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        nix::unistd::getpeereid(fd).map(|(uid, _)| uid.as_raw())
    }
}

/// The host's one-message answer to a connection on its fallback socket.
/// Sent without blocking: a fresh SEQPACKET connection always has room for
/// one short message.
pub fn send_greeting(fd: BorrowedFd<'_>, message: &[u8]) -> nix::Result<()> {
    #[cfg(target_os = "linux")]
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    #[cfg(not(target_os = "linux"))]
    let flags = {
        no_sigpipe(fd)?;
        MsgFlags::MSG_DONTWAIT
    };
    nix::sys::socket::send(fd.as_raw_fd(), message, flags).map(|_| ())
}

/// Sends on `fd` fail with EPIPE instead of raising SIGPIPE (SO_NOSIGPIPE:
/// macOS has no MSG_NOSIGNAL); the shims' call, which the host shares.
#[cfg(not(target_os = "linux"))]
use shims::no_sigpipe;
