//! The one place in this crate that needs `unsafe` (adopting the control
//! socket the host left open across exec, whose number arrives in the
//! environment), and the one place where the shims' system calls differ
//! between Linux and macOS.

#[cfg(not(target_os = "linux"))]
use std::os::fd::AsFd;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{SockType, getsockopt, sockopt};
use nix::sys::stat::{SFlag, fstat};

/// Why an inherited descriptor is not the host's control socket.
#[derive(Debug, thiserror::Error)]
pub enum InheritedFdError {
    #[error("fd {0} is a standard stream, not a control socket")]
    StandardStream(RawFd),
    #[error("inherited fd {fd} is not usable ({source})")]
    Unusable { fd: RawFd, source: nix::Error },
    #[error("inherited fd {0} is not a socket")]
    NotASocket(RawFd),
    #[error("inherited fd {0} is not a mitogen-fakessh control socket")]
    NotAControlSocket(RawFd),
}

/// Borrow inherited fd `fd` after checking it is a SOCK_SEQPACKET socket.
pub fn inherited_control_socket(fd: RawFd) -> Result<BorrowedFd<'static>, InheritedFdError> {
    if fd < 3 {
        return Err(InheritedFdError::StandardStream(fd));
    }
    // SAFETY: the fd number was placed in our environment by the host, which
    // left it open across exec for exactly this purpose. Nothing else in this
    // short-lived process owns or closes it, so borrowing it for the rest of
    // the process is sound; if it is not open, fstat below fails with EBADF
    // and we never use it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = fstat(borrowed).map_err(|source| InheritedFdError::Unusable { fd, source })?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(InheritedFdError::NotASocket(fd));
    }
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::SeqPacket) => Ok(borrowed),
        _ => Err(InheritedFdError::NotAControlSocket(fd)),
    }
}

/// `ssh -f`: fork; the parent gets the child's pid, the child `None`. Call
/// it before any thread is started.
pub fn fork() -> nix::Result<Option<nix::unistd::Pid>> {
    // SAFETY: the shim forks before it starts any thread (listeners and
    // sessions come after), so the child gets a consistent copy of a
    // single-threaded process.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
        nix::unistd::ForkResult::Child => Ok(None),
    }
}

/// In the background (`ssh -f`): stop holding the control socket the host
/// left to COMMAND (the host waits for its holders when COMMAND exits), and
/// reach the host through its socket path instead. Call it before any
/// thread is started.
pub fn forget_inherited_control() {
    let Some(fd) = std::env::var(crate::env::CONTROL_FD)
        .ok()
        .and_then(|t| t.parse::<RawFd>().ok())
        .filter(|fd| *fd > 2)
    else {
        return;
    };
    // SAFETY: the host left this descriptor to us (see
    // `inherited_control_socket`) and nothing has borrowed it yet: taking
    // ownership to close it closes it once.
    drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    // SAFETY: no other thread exists yet to read the environment while it
    // changes (see above).
    unsafe { std::env::remove_var(crate::env::CONTROL_FD) };
}

/// Restore the default action for `sig` (so re-raising it ends the process).
pub fn default_disposition(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: installing SIG_DFL runs no code of ours in signal context; the
    // only requirement of `signal` is that a handler be async-signal-safe,
    // and the default action is not a handler.
    unsafe { signal(sig, SigHandler::SigDfl) }.map(|_| ())
}

/// The window size of terminal `fd` as (columns, rows), if it is one.
pub fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
    // points at a live, properly aligned local of exactly that type; the fd
    // is borrowed, so it stays open for the call.
    let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// read(2) from `fd` into `buf`'s spare capacity (at least `want` bytes of
/// it), without zeroing it first and without a bounce buffer: every byte the
/// host sends is copied once, from the socket into the buffer its frame is
/// split from.
pub fn read_into(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut bytes::BytesMut,
    want: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is memory `buf` owns beyond its length, valid for
    // `spare.len()` bytes; read(2) writes at most that many and returns how
    // many it wrote, and only those are added to the length, so the length
    // never covers uninitialised bytes. The fd is borrowed for the call.
    unsafe {
        let n = nix::libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len());
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        buf.set_len(buf.len() + n as usize);
        Ok(n as usize)
    }
}

// Linux creates a descriptor close-on-exec in the same call (SOCK_CLOEXEC,
// pipe2), sends without SIGPIPE per call (MSG_NOSIGNAL) and names a socket's
// peer with SO_PEERCRED. macOS has none of these: there FD_CLOEXEC is set
// right after the call (no other thread can exec a child in between: the
// shims start no child process; `ssh -f` forks before any thread exists and
// scp/sftp exec), SIGPIPE is turned off per socket (SO_NOSIGPIPE) and the
// peer is getpeereid(3) (LOCAL_PEERCRED).

/// Mark a descriptor just created close-on-exec.
#[cfg(not(target_os = "linux"))]
fn set_cloexec(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(|_| ())
}

/// A new, unconnected SOCK_SEQPACKET Unix socket, close-on-exec.
pub fn seqpacket_socket() -> nix::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    #[cfg(target_os = "linux")]
    let flags = SockFlag::SOCK_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = SockFlag::empty();
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, flags, None)?;
    #[cfg(not(target_os = "linux"))]
    set_cloexec(fd.as_fd())?;
    Ok(fd)
}

/// A connected pair of SOCK_STREAM Unix sockets, both close-on-exec.
pub fn stream_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    #[cfg(target_os = "linux")]
    let flags = SockFlag::SOCK_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = SockFlag::empty();
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, flags)?;
    #[cfg(not(target_os = "linux"))]
    {
        set_cloexec(a.as_fd())?;
        set_cloexec(b.as_fd())?;
    }
    Ok((a, b))
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
        set_cloexec(read.as_fd())?;
        set_cloexec(write.as_fd())?;
        Ok((read, write))
    }
}

/// The uid of the process at the other end of a Unix socket (for a
/// listening socket: its credentials when it called listen(2)).
pub fn peer_uid(fd: BorrowedFd<'_>) -> nix::Result<u32> {
    #[cfg(target_os = "linux")]
    {
        getsockopt(&fd, sockopt::PeerCredentials).map(|cred| cred.uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        nix::unistd::getpeereid(fd).map(|(uid, _)| uid.as_raw())
    }
}

/// sendmsg(2) on `fd` that fails with EPIPE instead of raising SIGPIPE
/// when the host has gone.
pub fn send_without_sigpipe(
    fd: BorrowedFd<'_>,
    iov: &[std::io::IoSlice<'_>],
    cmsgs: &[nix::sys::socket::ControlMessage<'_>],
) -> nix::Result<usize> {
    use nix::sys::socket::{MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    #[cfg(target_os = "linux")]
    let flags = MsgFlags::MSG_NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = {
        no_sigpipe(fd)?;
        MsgFlags::empty()
    };
    sendmsg::<()>(fd.as_raw_fd(), iov, cmsgs, flags, None)
}

/// Sends on `fd` fail with EPIPE instead of raising SIGPIPE (SO_NOSIGPIPE).
#[cfg(not(target_os = "linux"))]
pub fn no_sigpipe(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes through the
    // pointer, which points at a live local `c_int`; the fd is borrowed, so
    // it stays open for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    nix::errno::Errno::result(rc).map(|_| ())
}
