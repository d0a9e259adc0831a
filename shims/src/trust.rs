//! Believing a socket path: before a word is read from it (or a descriptor
//! sent to it), its directory must be a real directory (not reached through
//! a symbolic link), owned by a trusted uid and writable by nobody else, the
//! socket a socket of a trusted uid, and the process listening on it
//! (SO_PEERCRED; getpeereid on macOS) of a trusted uid. Another local user
//! who squats the place (pre-creates the directory, plants a symlink,
//! listens there) is refused with one line that names the place and the uid.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{UnixAddr, connect};

/// Why a socket path is not believed.
#[derive(Debug, thiserror::Error)]
pub enum Distrust {
    #[error(
        "{} is a symbolic link (owned by uid {owner}); a socket's directory is never reached through one",
        .path.display()
    )]
    Symlink { path: PathBuf, owner: u32 },
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} belongs to uid {owner}, not to you (uid {me})", .path.display())]
    NotOurs { path: PathBuf, owner: u32, me: u32 },
    #[error("{} is writable by others (mode {mode:o})", .path.display())]
    Shared { path: PathBuf, mode: u32 },
    #[error("{} is not a socket", .0.display())]
    NotASocket(PathBuf),
    #[error(
        "the process listening on {} runs as uid {peer}, not as you (uid {me})",
        .path.display()
    )]
    Listener { path: PathBuf, peer: u32, me: u32 },
    #[error("cannot tell who listens on {}: {source}", .path.display())]
    PeerUnknown { path: PathBuf, source: nix::Error },
}

/// Why a socket path could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// Nothing there, or nobody listening: an ordinary failure to connect.
    #[error("{0}")]
    Connect(nix::Error),
    /// Something there that is not ours.
    #[error("not trusting {}: {why}", .socket.display())]
    Distrusted { socket: PathBuf, why: Distrust },
}

/// The uids whose sockets we believe: `me` (our effective uid) first.
#[derive(Clone, Debug)]
pub struct Trusted {
    me: u32,
    also: Vec<u32>,
}

impl Trusted {
    /// Our own effective uid only (a daemon's clients).
    pub fn me_only() -> Trusted {
        Trusted {
            me: nix::unistd::geteuid().as_raw(),
            also: Vec::new(),
        }
    }

    /// Our own uid and `also` (a shim: root, who can do anything to us
    /// anyway, and, if we are root, the host that named itself).
    pub fn me_and(also: impl IntoIterator<Item = u32>) -> Trusted {
        let mut trusted = Trusted::me_only();
        trusted.also = also.into_iter().filter(|u| *u != trusted.me).collect();
        trusted
    }

    fn contains(&self, uid: u32) -> bool {
        uid == self.me || self.also.contains(&uid)
    }

    fn owner(&self, path: &Path, owner: u32) -> Result<(), Distrust> {
        match self.contains(owner) {
            true => Ok(()),
            false => Err(Distrust::NotOurs {
                path: path.to_path_buf(),
                owner,
                me: self.me,
            }),
        }
    }
}

/// The parent of `socket` (absolute), where its checks start.
fn directory_of(socket: &Path) -> PathBuf {
    std::path::absolute(socket)
        .unwrap_or_else(|_| socket.to_path_buf())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A missing file is "not there" (as connect would say), not distrust.
fn not_there(e: &std::io::Error) -> ReachError {
    ReachError::Connect(
        e.raw_os_error()
            .map(nix::errno::Errno::from_raw)
            .unwrap_or(nix::errno::Errno::ENOENT),
    )
}

/// Check `dir` as a private directory of a trusted uid, not through a
/// symlink (lstat).
pub fn check_directory(dir: &Path, trusted: &Trusted) -> Result<(), Distrust> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(_) => return Err(Distrust::NotADirectory(dir.to_path_buf())),
    };
    if meta.file_type().is_symlink() {
        return Err(Distrust::Symlink {
            path: dir.to_path_buf(),
            owner: meta.uid(),
        });
    }
    if !meta.is_dir() {
        return Err(Distrust::NotADirectory(dir.to_path_buf()));
    }
    trusted.owner(dir, meta.uid())?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Distrust::Shared {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Connect to the SOCK_SEQPACKET socket at `socket` only if its place and
/// its listener are trusted: the directory and the socket file are checked
/// before connecting, the listener's uid (SO_PEERCRED) right after, before
/// anything is read or sent.
pub fn connect_trusted(socket: &Path, trusted: &Trusted) -> Result<OwnedFd, ReachError> {
    let distrusted = |why: Distrust| ReachError::Distrusted {
        socket: socket.to_path_buf(),
        why,
    };
    let dir = directory_of(socket);
    match std::fs::symlink_metadata(&dir) {
        Err(e) => return Err(not_there(&e)),
        Ok(_) => check_directory(&dir, trusted).map_err(distrusted)?,
    }
    let meta = std::fs::symlink_metadata(socket).map_err(|e| not_there(&e))?;
    if !meta.file_type().is_socket() {
        return Err(distrusted(Distrust::NotASocket(socket.to_path_buf())));
    }
    trusted.owner(socket, meta.uid()).map_err(distrusted)?;
    let fd = socket_fd().map_err(ReachError::Connect)?;
    let addr = UnixAddr::new(socket).map_err(ReachError::Connect)?;
    connect(fd.as_raw_fd(), &addr).map_err(ReachError::Connect)?;
    let peer = listener_uid(&fd).map_err(|source| {
        distrusted(Distrust::PeerUnknown {
            path: socket.to_path_buf(),
            source,
        })
    })?;
    if !trusted.contains(peer) {
        return Err(distrusted(Distrust::Listener {
            path: socket.to_path_buf(),
            peer,
            me: trusted.me,
        }));
    }
    Ok(fd)
}

fn socket_fd() -> nix::Result<OwnedFd> {
    crate::sys::seqpacket_socket()
}

/// The uid of the process that listens at the other end (its credentials
/// when it called listen(2)).
fn listener_uid(fd: &OwnedFd) -> nix::Result<u32> {
    crate::sys::peer_uid(fd.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shims-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn places_are_checked_before_connecting() {
        let dir = private_dir();
        let me = Trusted::me_only();
        // Nothing there: an ordinary "no such file".
        let missing = connect_trusted(&dir.join("gone/s"), &me).unwrap_err();
        assert!(matches!(missing, ReachError::Connect(_)), "{missing}");
        let missing = connect_trusted(&dir.join("s"), &me).unwrap_err();
        assert!(matches!(missing, ReachError::Connect(_)), "{missing}");
        // A symlink to our own directory is still a symlink.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = connect_trusted(&link.join("s"), &me).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        // A file that is not a socket.
        std::fs::write(dir.join("s"), b"").unwrap();
        let e = connect_trusted(&dir.join("s"), &me).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        // A directory others may write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = connect_trusted(&dir.join("s"), &me).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
