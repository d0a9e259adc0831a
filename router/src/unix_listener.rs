//! A Unix socket listener that only its owner can connect to from the
//! moment its path exists, as OpenSSH's `StreamLocalBindMask 0177` makes
//! them (mode 0600). Binding first and chmod'ing afterwards would leave a
//! window in which another local account connects (and a connection made
//! then stays in the backlog). The umask cannot be narrowed around the
//! bind either: it belongs to the whole process, whose other threads may
//! be creating files at that moment.
//!
//! So the socket is bound in a fresh 0700 directory next to its path,
//! made 0600 there, and only then linked under its own name (`link(2)`
//! never replaces an existing file: a path already taken is "Address
//! already in use", as `bind` says). The staging directory goes at once.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The mode of a bound socket: read and write (connect) for the owner.
pub const OWNER_ONLY: u32 = 0o600;

/// How many staging names to try before giving up (another process may
/// hold one by chance).
const STAGING_ATTEMPTS: u32 = 16;

/// Bind and listen on `path` with mode 0600, with no moment at which
/// anyone else could connect.
pub fn bind_owner_only(path: &Path) -> io::Result<UnixListener> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    if name.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = staging_dir(parent)?;
    let inside = staging.join("s");
    let bound = UnixListener::bind(&inside).and_then(|listener| {
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(OWNER_ONLY))?;
        std::fs::hard_link(&inside, path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => io::Error::from(io::ErrorKind::AddrInUse),
            _ => e,
        })?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&inside);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// A fresh directory of ours, mode 0700, in `parent`.
fn staging_dir(parent: &Path) -> io::Result<PathBuf> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for attempt in 0..STAGING_ATTEMPTS {
        let dir = parent.join(format!(".mfs-bind-{:08x}", unguessable(attempt)));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// 32 bits another account cannot predict (std's per-process random keys).
fn unguessable(salt: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(salt);
    h.write_u32(std::process::id());
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn the_socket_appears_owner_only_and_connectable() {
        let dir = std::env::temp_dir().join(format!("mfs-ul-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let listener = bind_owner_only(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, OWNER_ONLY);
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
        // Nothing of the staging is left; a taken path is "in use".
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        let again = bind_owner_only(&path).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
