//! The shim's own standard descriptors: which go to the host, and how the
//! ones that stay are written and closed.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{Shutdown, shutdown};
use nix::sys::stat::{SFlag, fstat};
use proto::control;

/// Which of our standard descriptors the host serves itself. Pipes and
/// sockets go over with the session socket, so their data never passes
/// through this process; a tty (raw mode, window size, job control) or a
/// regular file (which epoll cannot watch) stays here, and a pty session
/// keeps everything here.
#[derive(Clone, Copy, Debug, Default)]
pub struct Handover {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// A forwarded connection's socket, as both stdin and stdout, instead
    /// of our own descriptors.
    pub socket: Option<RawFd>,
}

impl Handover {
    pub fn choose(stdin_null: bool, pty: bool) -> Handover {
        if pty {
            return Handover::default();
        }
        Handover {
            stdin: !stdin_null && pipe_or_socket(std::io::stdin().as_fd()),
            stdout: pipe_or_socket(std::io::stdout().as_fd()),
            stderr: pipe_or_socket(std::io::stderr().as_fd()),
            socket: None,
        }
    }

    /// A forwarded connection: `fd` is the session's stdin and stdout.
    pub fn socket(fd: RawFd) -> Handover {
        Handover {
            stdin: true,
            stdout: true,
            stderr: false,
            socket: Some(fd),
        }
    }

    /// What the session request announces.
    pub fn announced(self) -> control::Handover {
        control::Handover {
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }

    /// The descriptors handed over, in the order the request announces.
    pub fn fds(self) -> Vec<RawFd> {
        let (stdin, stdout) = match self.socket {
            Some(fd) => (fd, fd),
            None => (0, 1),
        };
        [(self.stdin, stdin), (self.stdout, stdout), (self.stderr, 2)]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, fd)| *fd)
            .collect()
    }

    /// Once the host holds them, our copies of stdin and stdout become
    /// /dev/null: the host's close (or half-close) of stdout must be the
    /// one the reader sees. stderr stays, for our own last words.
    pub fn let_go(self) {
        if self.socket.is_some() {
            return;
        }
        let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        else {
            return;
        };
        if self.stdin {
            let _ = nix::unistd::dup2_stdin(&null);
        }
        if self.stdout {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
}

fn pipe_or_socket(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

/// Where the remote command's stdin comes from.
pub enum StdinSource {
    /// `-n`: nothing; EOF at once.
    Null,
    /// Our stdin, read by us.
    Pumped,
    /// Our stdin, read by the host (see [`Handover`]).
    HandedOver,
}

/// Write all of `data`. The descriptor may be non-blocking (clients hand us
/// sockets they share with themselves), so EAGAIN means "wait", not "gone".
pub fn write_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait_for(fd, PollFlags::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Block until `fd` is ready for `what` (or has hung up / failed, which the
/// next read or write then reports).
pub fn wait_for(fd: BorrowedFd<'_>, what: PollFlags) -> nix::Result<()> {
    let mut fds = [PollFd::new(fd, what)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// Remote stdout is done: a socket gets `shutdown(SHUT_WR)` (scp and sftp pass
/// one socketpair as stdin and stdout, so a close would not be seen); anything
/// else is replaced by /dev/null, which closes our copy.
pub fn close_stdout() {
    let stdout = std::io::stdout();
    let is_socket = fstat(stdout.as_fd())
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
        .unwrap_or(false);
    if is_socket {
        let _ = shutdown(stdout.as_raw_fd(), Shutdown::Write);
    } else if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}
