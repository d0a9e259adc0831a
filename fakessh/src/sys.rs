//! System calls around file descriptors: the only module of this crate with
//! `unsafe`, each block explained, and the only place where the host's
//! system calls differ between Linux and macOS (agents run on Linux only;
//! their Linux-only calls answer "not supported" elsewhere).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

mod flags;
mod socket;

pub use flags::set_nonblocking;

pub use socket::{
    Received, accept_cloexec, peer_uid, pipe_cloexec, recv_fds, send_greeting, seqpacket_listener,
    seqpacket_pair,
};

/// Let `fd` survive exec (clear FD_CLOEXEC), for the wrapped command.
pub fn set_inheritable(fd: BorrowedFd<'_>) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(|_| ())
}

/// Register an owned descriptor with tokio's reactor.
pub fn register_async(fd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is an open descriptor that only it may close; it
    // returns the same number from `as_raw_fd` for its whole life, and the
    // `AsyncFd` takes ownership of it, which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Make the child a session leader whose controlling terminal is its
/// stderr (a pty slave): what sudo's `requiretty` checks, and where sudo,
/// su and doas ask for passwords. stdin and stdout stay as given, so the
/// protocol never crosses the pty.
pub fn controlling_tty_on_stderr(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child between fork and exec,
    // after std has dup2'd the child's stdio. It only calls setsid(2) and
    // ioctl(2), both async-signal-safe, allocates nothing and touches no
    // locks, which is what pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(2, libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Which side of [`fork_daemon`] this is.
pub enum Forked {
    /// The caller: the daemon's pid.
    Parent(u32),
    /// The daemon: in a session of its own, with no terminal.
    Daemon,
}

/// Fork the daemon off `mitogen-fakessh start`. Must be called before any
/// thread exists (before the runtime is built).
pub fn fork_daemon() -> nix::Result<Forked> {
    // SAFETY: fork(2) in a process with a single thread (start forks before
    // building its runtime, and nothing before it starts threads): the
    // child gets a consistent copy of everything, locks included.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw() as u32)),
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid()?;
            Ok(Forked::Daemon)
        }
    }
}

/// Point stdin and stdout at /dev/null and stderr at `log` (appended,
/// 0600): a daemon has no terminal, and its diagnostics go to its log.
pub fn detach_stdio(log: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&log)?;
    Ok(())
}

/// Raise the soft limit on open descriptors to the hard limit: a host
/// driving hundreds of hops holds a few descriptors for each. Returns the
/// limit as it was, for [`keep_fd_limit`].
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
        return Some(soft);
    }
    None
}

/// Give COMMAND the descriptor limit the host was started with (`soft`):
/// a program that closes every descriptor up to the limit must not find
/// a million of them.
pub fn keep_fd_limit(cmd: &mut tokio::process::Command, soft: u64) {
    // SAFETY: the closure runs in the forked child between fork and exec.
    // It calls getrlimit(2) and setrlimit(2), both async-signal-safe, and
    // allocates nothing and takes no lock, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            use nix::sys::resource::{Resource, getrlimit, setrlimit};
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
            Ok(())
        });
    }
}

/// Give memory the allocator holds free back to the system. glibc's malloc
/// keeps freed chunks in its arenas: over 10,000 sessions the resident
/// memory of the host and of an agent crept up by 1 to 1.5 MiB while the
/// live heap stayed flat (valgrind massif). Called when the last open
/// session ends, it keeps them at their level (docs/BENCHMARKS.md, soak).
/// mimalloc (the 64-bit static agents) keeps freed pages for reuse the
/// same way: an agent's resident size crept up by about 1 MiB over the
/// 10,000 sessions of the soak. musl's own malloc returns them by itself.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its locks and returns a flag; it takes no pointer of ours.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(all(target_env = "musl", target_pointer_width = "64"))]
    // SAFETY: mi_collect only walks mimalloc's own heaps (this thread's,
    // and the pages other threads abandoned); it takes no pointer of ours.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// One malloc arena for the whole process: with one per thread (glibc's
/// default), freed memory scatters over them and the resident size of a
/// long-lived agent creeps up.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // runtime's threads start, so no allocation races with it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Tell the pty behind `master` its new size (the shim's window changed).
pub fn set_window_size(master: BorrowedFd<'_>, cols: u16, rows: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which
    // points at a live local of exactly that type; the fd is borrowed, so
    // it stays open for the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// read(2) into the unfilled part of `buf` without zeroing it first (the
/// frame reader's spare capacity is 256 KiB: zeroing it on every read cost
/// more than the data once sessions were many and reads small).
pub fn read_into(fd: BorrowedFd<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::io::Result<usize> {
    // SAFETY: read(2) writes at most `len` bytes at `ptr` and returns how
    // many (or -1), which is `fill_unfilled`'s contract. The fd is borrowed,
    // so it stays open for the call.
    unsafe { fill_unfilled(buf, |ptr, len| libc::read(fd.as_raw_fd(), ptr.cast(), len)) }
}

/// Like [`read_into`], but never blocking and without O_NONBLOCK: for a
/// descriptor a shim handed over, whose open file it shares with other
/// processes, `preadv2(RWF_NOWAIT)` makes this one read non-blocking where
/// O_NONBLOCK would change the mode under every holder. Kernels whose pipes
/// or sockets do not take the flag answer EOPNOTSUPP, and so does every
/// other system (no `preadv2`): the caller then falls back to O_NONBLOCK.
#[cfg(not(target_os = "linux"))]
pub fn read_nowait(
    _fd: BorrowedFd<'_>,
    _buf: &mut tokio::io::ReadBuf<'_>,
) -> std::io::Result<usize> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// See the other [`read_nowait`].
#[cfg(target_os = "linux")]
pub fn read_nowait(fd: BorrowedFd<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::io::Result<usize> {
    // SAFETY: preadv2(2) with one iovec of (`ptr`, `len`) writes at most
    // `len` bytes there and returns how many (or -1): `fill_unfilled`'s
    // contract. Offset -1 means "the current position", the only one a
    // pipe or socket has. The fd is borrowed for the call.
    unsafe {
        fill_unfilled(buf, |ptr, len| {
            let iov = libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            };
            libc::preadv2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT)
        })
    }
}

/// Let `read` fill the unfilled part of `buf`, then count exactly what it
/// filled.
///
/// # Safety
/// `read(ptr, len)` must write at most `len` bytes starting at `ptr` and
/// return that count, or a negative value with `errno` set.
unsafe fn fill_unfilled(
    buf: &mut tokio::io::ReadBuf<'_>,
    read: impl FnOnce(*mut u8, usize) -> isize,
) -> std::io::Result<usize> {
    // SAFETY: `unfilled_mut` hands out possibly-uninitialised memory that we
    // must not de-initialise; `read` only writes into it (the caller's
    // contract), and its count is exactly what `assume_init` and `advance`
    // are then told.
    unsafe {
        let unfilled = buf.unfilled_mut();
        let n = read(unfilled.as_mut_ptr().cast(), unfilled.len());
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

/// The writing counterpart of [`read_nowait`]: `pwritev2(RWF_NOWAIT)`
/// (EOPNOTSUPP outside Linux).
#[cfg(not(target_os = "linux"))]
pub fn write_nowait(_fd: BorrowedFd<'_>, _data: &[u8]) -> std::io::Result<usize> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// See the other [`write_nowait`].
#[cfg(target_os = "linux")]
pub fn write_nowait(fd: BorrowedFd<'_>, data: &[u8]) -> std::io::Result<usize> {
    let iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: the iovec points at `data`, live and readable for its length
    // for the whole call; pwritev2(2) only reads through it (the `*mut` is
    // the C signature, not a licence to write). The fd is borrowed.
    let n = unsafe { libc::pwritev2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The bootstrap starts the agent through fd 3, the descriptor on which it
/// hashed the agent's file (`exec /proc/self/fd/3`), and the shell leaves
/// it open across that exec. Keep it from the commands the agent runs:
/// mark it close-on-exec if it is our own executable; any other fd 3 is
/// left as it is.
pub fn keep_bootstrap_fd_private() {
    use std::os::unix::fs::MetadataExt;
    const BOOTSTRAP_FD: libc::c_int = 3;
    #[cfg(target_os = "linux")]
    const BOOTSTRAP_FD_FILE: &str = "/proc/self/fd/3";
    #[cfg(not(target_os = "linux"))]
    const BOOTSTRAP_FD_FILE: &str = "/dev/fd/3";
    let Ok(exe) = std::fs::metadata(own_executable()) else {
        return;
    };
    // The open file itself (the link is resolved to it, not to a name).
    let Ok(fd3) = std::fs::metadata(BOOTSTRAP_FD_FILE) else {
        return;
    };
    if (fd3.dev(), fd3.ino()) == (exe.dev(), exe.ino()) {
        // SAFETY: F_SETFD on a descriptor number touches only that
        // descriptor's flags (on one that is not open it fails with EBADF);
        // nothing is closed or written to memory. Called first thing in
        // the agent, before any other thread exists.
        unsafe { libc::fcntl(BOOTSTRAP_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// This executable's file: on Linux `/proc/self/exe`, which still opens our
/// bytes even if the file at our path was replaced; elsewhere (no `/proc`)
/// the path the system reports, which does not.
pub fn own_executable() -> std::path::PathBuf {
    #[cfg(target_os = "linux")]
    {
        std::path::PathBuf::from("/proc/self/exe")
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::env::current_exe().unwrap_or_default()
    }
}

/// Set the capacity of pipe `fd` to `bytes` (F_SETPIPE_SZ; Linux only,
/// ENOTSUP elsewhere).
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: i32) -> nix::Result<()> {
    #[cfg(target_os = "linux")]
    {
        fcntl(fd, FcntlArg::F_SETPIPE_SZ(bytes)).map(|_| ())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, bytes);
        Err(nix::errno::Errno::ENOTSUP)
    }
}

/// Give a lane's FIFO a 1 MiB buffer (64 KiB by default), so a lane's
/// writer and reader wait on each other less; where the system refuses
/// (an unprivileged account past `/proc/sys/fs/pipe-max-size`), it keeps
/// its size.
pub fn widen_pipe(fd: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    let _ = fcntl(fd.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}
