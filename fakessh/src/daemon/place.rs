//! Where a daemon lives: its socket, and beside it the shims (`SOCKET.bin/`)
//! and the log (`SOCKET.log`), in a directory only its user can write,
//! never reached through a symbolic link. Without `--socket`:
//! `$XDG_RUNTIME_DIR/mitogen-fakessh/daemon.sock` if that runtime directory
//! is a private one of ours, else a fresh directory made like ssh-agent's
//! (`mkdtemp`): `${TMPDIR:-/tmp}/mitogen-fakessh-daemon-XXXXXXXXXX/daemon.sock`,
//! a name nobody else can know in advance or pre-create.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use shims::trust::{Distrust, Trusted, check_directory};

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
        "{why}: a daemon's socket needs a directory of yours that only you can write, e.g. --socket ~/.mitogen-fakessh/daemon.sock"
    )]
    Untrusted { why: Distrust },
    #[error("{} belongs to uid {owner}, not to you (uid {me})", .path.display())]
    NotOurs { path: PathBuf, owner: u32, me: u32 },
    #[error("{} exists and is not a socket; not touching it", .0.display())]
    NotASocket(PathBuf),
    #[error(
        "no daemon to talk to: {SOCKET_ENV} is unset (and there is no $XDG_RUNTIME_DIR); start one: eval \"$(mitogen-fakessh start)\", or name its --socket"
    )]
    NoSocket,
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
/// one in `$XDG_RUNTIME_DIR` (a `start` without either made a fresh
/// directory nobody can guess: its socket is only known from the variable).
pub fn socket_for_client(flag: Option<&Path>) -> Result<PathBuf, PlaceError> {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .or_else(|| runtime_dir().map(|dir| dir.join(RUNTIME_SOCKET)))
        .ok_or(PlaceError::NoSocket)
}

/// The daemon's socket under `$XDG_RUNTIME_DIR`.
const RUNTIME_SOCKET: &str = "mitogen-fakessh/daemon.sock";

/// `$XDG_RUNTIME_DIR`, if it is an absolute path to a directory of ours
/// that nobody else can write (as systemd-logind makes it).
fn runtime_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    (dir.is_absolute() && check_directory(&dir, &Trusted::me_only()).is_ok()).then_some(dir)
}

impl Place {
    /// The place for `start`: `flag` (checked, see [`Place::prepare`]),
    /// else the one in `$XDG_RUNTIME_DIR`, else a fresh private directory.
    pub fn choose(flag: Option<&Path>) -> Result<Place, PlaceError> {
        if let Some(socket) = flag {
            return Place::prepare(socket);
        }
        if let Some(runtime) = runtime_dir() {
            return Place::prepare(&runtime.join(RUNTIME_SOCKET));
        }
        Place::fresh_in(&std::env::temp_dir())
    }

    /// `PARENT/mitogen-fakessh-daemon-XXXXXXXXXX/daemon.sock`: mkdir(2)
    /// with mode 0700 of a name with 10 random characters, retried on a
    /// clash, as ssh-agent's mkdtemp: nobody else can pre-create it.
    fn fresh_in(parent: &Path) -> Result<Place, PlaceError> {
        let dir = tempfile::Builder::new()
            .prefix("mitogen-fakessh-daemon-")
            .rand_bytes(10)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(io(parent))?
            .keep();
        let mut place = Place::prepare(&dir.join("daemon.sock"))?;
        place.made_dir = Some(dir);
        Ok(place)
    }

    /// Check `socket` (its length, its directory: created 0700 if missing,
    /// else ours, writable by us alone, and not a symbolic link) and name
    /// the files beside it.
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
        // Checked after creating it: whoever made it first, it must be ours.
        check_directory(&dir, &Trusted::me_only()).map_err(|why| PlaceError::Untrusted { why })?;
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
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(PlaceError::NotOurs {
                path: self.socket.clone(),
                owner: meta.uid(),
                me,
            });
        }
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
        assert!(matches!(e, PlaceError::Untrusted { .. }), "{e}");
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
        // A symbolic link to a private directory of ours is still refused.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("new"), &link).unwrap();
        let e = Place::prepare(&link.join("daemon.sock")).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
    }

    #[test]
    fn without_a_socket_flag_the_place_is_fresh_and_private() {
        let parent = tempfile::tempdir().unwrap();
        let a = Place::fresh_in(parent.path()).unwrap();
        let b = Place::fresh_in(parent.path()).unwrap();
        assert_ne!(a.socket, b.socket, "two starts, two places");
        let dir = a.made_dir.clone().unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("mitogen-fakessh-daemon-"), "{name}");
        assert_eq!(name.len(), "mitogen-fakessh-daemon-".len() + 10);
        let mode = std::fs::symlink_metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        a.remove();
        assert!(!dir.exists(), "stop removes the directory it made");
        b.remove();
    }
}
