//! The one place in this crate that needs `unsafe`: adopting the control
//! socket the host left open across exec, whose number arrives in the
//! environment.

use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::socket::{SockType, getsockopt, sockopt};
use nix::sys::stat::{SFlag, fstat};

use crate::error::ShimError;

/// Borrow inherited fd `fd` after checking it is a SOCK_SEQPACKET socket.
pub fn inherited_control_socket(fd: RawFd) -> Result<BorrowedFd<'static>, ShimError> {
    if fd < 3 {
        return Err(ShimError::StandardStream(fd));
    }
    // SAFETY: the fd number was placed in our environment by the host, which
    // left it open across exec for exactly this purpose. Nothing else in this
    // short-lived process owns or closes it, so borrowing it for the rest of
    // the process is sound; if it is not open, fstat below fails with EBADF
    // and we never use it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = fstat(borrowed).map_err(|source| ShimError::Unusable { fd, source })?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(ShimError::NotASocket(fd));
    }
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::SeqPacket) => Ok(borrowed),
        _ => Err(ShimError::NotAControlSocket(fd)),
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
