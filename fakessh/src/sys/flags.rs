//! Descriptor flags: close-on-exec where a descriptor cannot be created
//! with it, and non-blocking mode.

use std::os::fd::BorrowedFd;

#[cfg(not(target_os = "linux"))]
use nix::fcntl::FdFlag;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Close `fd` on exec (set FD_CLOEXEC): where the system has no way to
/// create a descriptor with the flag (macOS: no SOCK_CLOEXEC, pipe2,
/// accept4 or MSG_CMSG_CLOEXEC), it is set right after.
#[cfg(not(target_os = "linux"))]
pub fn set_cloexec(fd: BorrowedFd<'_>) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(|_| ())
}

/// Switch `fd` to non-blocking mode (ours alone: agent transports, the
/// host's end of the control socket).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}
