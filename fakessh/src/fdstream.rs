//! Async reads and writes on a plain descriptor (pipe or socket; a tty for
//! an agent's transport), driven by tokio's reactor.
//!
//! Two kinds of descriptor need two ways of not blocking. One that is ours
//! alone (an agent's transport: sshd hands it pipes, a local parent a
//! socket, sudo whatever it was given) is switched to O_NONBLOCK. One that a
//! shim handed over is shared with the client and whoever else holds the
//! same pipe (make's other jobs, a shell): O_NONBLOCK there would be
//! everyone's, and their blocking writes would start failing with EAGAIN.
//! Those get per-call `RWF_NOWAIT` instead, and O_NONBLOCK (what OpenSSH
//! always does) only on a kernel that refuses the flag.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::sys;

/// One descriptor, driven by tokio's reactor.
pub struct FdStream {
    fd: AsyncFd<OwnedFd>,
    /// Per-call RWF_NOWAIT rather than O_NONBLOCK (a shared descriptor).
    nowait: bool,
}

impl FdStream {
    /// Take `fd`, ours alone (switching it to non-blocking mode).
    pub fn new(fd: OwnedFd) -> io::Result<FdStream> {
        sys::set_nonblocking(fd.as_fd()).map_err(io::Error::from)?;
        Ok(FdStream {
            fd: sys::register_async(fd)?,
            nowait: false,
        })
    }

    /// Take `fd`, a pipe or socket shared with other processes, leaving
    /// its blocking mode alone. Fails for descriptors epoll cannot watch
    /// (regular files).
    pub fn shared(fd: OwnedFd) -> io::Result<FdStream> {
        Ok(FdStream {
            fd: sys::register_async(fd)?,
            nowait: true,
        })
    }

    /// The kernel does not take RWF_NOWAIT on this descriptor: fall back to
    /// O_NONBLOCK, as OpenSSH does for every non-tty descriptor it is given.
    fn without_nowait(&mut self) -> io::Result<()> {
        debug!("RWF_NOWAIT refused: switching a shared descriptor to O_NONBLOCK");
        self.nowait = false;
        sys::set_nonblocking(self.fd.get_ref().as_fd()).map_err(io::Error::from)
    }
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EOPNOTSUPP)
}

impl AsyncRead for FdStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let nowait = self.nowait;
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let result = guard.try_io(|inner| {
                let fd = inner.get_ref().as_fd();
                if nowait {
                    sys::read_nowait(fd, buf)
                } else {
                    sys::read_into(fd, buf)
                }
            });
            match result {
                Ok(Ok(_)) => return Poll::Ready(Ok(())),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) if nowait && unsupported(&e) => self.without_nowait()?,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let nowait = self.nowait;
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let result = guard.try_io(|inner| {
                if nowait {
                    sys::write_nowait(inner.get_ref().as_fd(), data)
                } else {
                    nix::unistd::write(inner.get_ref(), data).map_err(io::Error::from)
                }
            });
            match result {
                Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) if nowait && unsupported(&e) => self.without_nowait()?,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing happens on drop; a socket additionally gets a half-close.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(self.fd.get_ref()),
            nix::sys::socket::Shutdown::Write,
        );
        Poll::Ready(Ok(()))
    }
}
