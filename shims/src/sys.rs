//! The one place in this crate that needs `unsafe`: adopting the control
//! socket the host left open across exec, whose number arrives in the
//! environment.

use std::os::fd::{BorrowedFd, RawFd};

use nix::sys::socket::{SockType, getsockopt, sockopt};
use nix::sys::stat::{SFlag, fstat};

/// Borrow inherited fd `fd` after checking it is a SOCK_SEQPACKET socket.
pub fn inherited_control_socket(fd: RawFd) -> Result<BorrowedFd<'static>, String> {
    if fd < 3 {
        return Err(format!(
            "fd {fd} is a standard stream, not a control socket"
        ));
    }
    // SAFETY: the fd number was placed in our environment by the host, which
    // left it open across exec for exactly this purpose. Nothing else in this
    // short-lived process owns or closes it, so borrowing it for the rest of
    // the process is sound; if it is not open, fstat below fails with EBADF
    // and we never use it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = fstat(borrowed).map_err(|e| format!("inherited fd {fd} is not usable ({e})"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(format!("inherited fd {fd} is not a socket"));
    }
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::SeqPacket) => Ok(borrowed),
        _ => Err(format!(
            "inherited fd {fd} is not a mitogen-fakessh control socket"
        )),
    }
}

/// Restore the default action for `sig` (so re-raising it ends the process).
pub fn default_disposition(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: installing SIG_DFL runs no code of ours in signal context; the
    // only requirement of `signal` is that a handler be async-signal-safe,
    // and the default action is not a handler.
    unsafe { signal(sig, SigHandler::SigDfl) }.map(|_| ())
}
