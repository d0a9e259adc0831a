//! Where a daemon lives: its socket, and beside it the shims (`SOCKET.bin/`)
//! and the log (`SOCKET.log`), in a directory only its user can write. The
//! default is `$XDG_RUNTIME_DIR/mitogen-fakessh/daemon.sock`, else
//! `${TMPDIR:-/tmp}/mitogen-fakessh-daemon-UID/daemon.sock` (not the
//! `mitogen-fakessh-UID` an agent may be kept in).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The longest socket path the kernel takes (`sun_path` holds 108 bytes,
/// the last a NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Environment variable that points shims (and `exec`, `status`, `stop`)
/// at a host's socket path.
pub use shims::env::CONTROL_PATH as SOCKET_ENV;

/// A place that cannot hold a daemon's socket.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "the socket path {} is {len} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH}: choose a shorter --socket",
        .path.display()
    )]
    TooLong { path: PathBuf, len: usize },
    #[error(
        "{} is writable by others (mode {mode:o}): a daemon's socket needs a directory only you can write, e.g. --socket ~/.mitogen-fakessh/daemon.sock",
        .dir.display()
    )]
    SharedDirectory { dir: PathBuf, mode: u32 },
    #[error("{} belongs to uid {owner}, not to you (uid {me})", .path.display())]
    NotOurs { path: PathBuf, owner: u32, me: u32 },
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} exists and is not a socket; not touching it", .0.display())]
    NotASocket(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A daemon's files.
#[derive(Clone, Debug)]
pub struct Place {
    pub socket: PathBuf,
    /// The shims' directory, first on PATH in a shell that ran `start`'s
    /// output.
    pub bin: PathBuf,
    pub log: PathBuf,
    /// The directory we made for it (removed by `stop`), if we did.
    pub made_dir: Option<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlaceError + '_ {
    move |source| PlaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The socket to talk to: `flag`, else `$MITOGEN_FAKESSH_SOCK`, else the
/// default place.
pub fn socket_for_client(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(default_socket)
}

/// `$XDG_RUNTIME_DIR/mitogen-fakessh/daemon.sock`, else
/// `${TMPDIR:-/tmp}/mitogen-fakessh-daemon-UID/daemon.sock`.
pub fn default_socket() -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir());
    match runtime {
        Some(dir) => dir.join("mitogen-fakessh/daemon.sock"),
        None => std::env::temp_dir()
            .join(format!("mitogen-fakessh-daemon-{uid}"))
            .join("daemon.sock"),
    }
}

impl Place {
    /// Check `socket` (its length, its directory: created 0700 if missing,
    /// else ours and writable by us alone) and name the files beside it.
    pub fn prepare(socket: &Path) -> Result<Place, PlaceError> {
        let socket = std::path::absolute(socket).map_err(io(socket))?;
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(PlaceError::TooLong { path: socket, len });
        }
        let dir = socket.parent().unwrap_or(Path::new("/")).to_path_buf();
        let made_dir = match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io(&dir))?;
                Some(dir.clone())
            }
            Err(e) => return Err(io(&dir)(e)),
            Ok(_) => None,
        };
        check_private_dir(&dir)?;
        let with = |suffix: &str| {
            let mut name = socket.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Ok(Place {
            bin: with(".bin"),
            log: with(".log"),
            socket,
            made_dir,
        })
    }

    /// A socket file left by a daemon that is gone: remove it (only if it
    /// is a socket of ours).
    pub fn remove_stale_socket(&self) -> Result<(), PlaceError> {
        let meta = match std::fs::symlink_metadata(&self.socket) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.socket)(e)),
            Ok(meta) => meta,
        };
        if !meta.file_type().is_socket() {
            return Err(PlaceError::NotASocket(self.socket.clone()));
        }
        check_owner(&self.socket, meta.uid())?;
        std::fs::remove_file(&self.socket).map_err(io(&self.socket))
    }

    /// Remove what the daemon made: the socket, the shims, and the
    /// directory if we made it (the log goes with it then).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir_all(&self.bin);
        if let Some(dir) = &self.made_dir {
            let _ = std::fs::remove_file(&self.log);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A directory that is ours and writable by nobody else.
fn check_private_dir(dir: &Path) -> Result<(), PlaceError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(PlaceError::NotADirectory(dir.to_path_buf()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PlaceError::SharedDirectory {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    check_owner(dir, meta.uid())
}

fn check_owner(path: &Path, owner: u32) -> Result<(), PlaceError> {
    let me = nix::unistd::geteuid().as_raw();
    match owner == me {
        true => Ok(()),
        false => Err(PlaceError::NotOurs {
            path: path.to_path_buf(),
            owner,
            me,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_places_are_checked() {
        let long = format!("/tmp/{}/daemon.sock", "x".repeat(120));
        assert!(matches!(
            Place::prepare(Path::new(&long)),
            Err(PlaceError::TooLong { .. })
        ));
        let e = Place::prepare(Path::new("/tmp/daemon.sock")).unwrap_err();
        assert!(matches!(e, PlaceError::SharedDirectory { .. }), "{e}");
        assert!(e.to_string().contains("writable by others"));
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("new/daemon.sock");
        let place = Place::prepare(&socket).unwrap();
        assert_eq!(
            place.made_dir.as_deref(),
            Some(dir.path().join("new").as_path())
        );
        let mode = std::fs::metadata(dir.path().join("new")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(place.bin.ends_with("daemon.sock.bin"));
        std::fs::write(&place.socket, b"not a socket").unwrap();
        assert!(matches!(
            place.remove_stale_socket(),
            Err(PlaceError::NotASocket(_))
        ));
    }
}
