//! `--password-file`: the password for sudo/su/doas hops, read once.
//!
//! It is never offered to an sshd: ssh password and keyboard-interactive
//! authentication only answer a prompt that names `user@host`, on the
//! terminal or through `SSH_ASKPASS`, as with OpenSSH. A file that the
//! group or others may read or write is refused, as OpenSSH refuses an
//! unprotected private key: another user of this machine could read the
//! fleet's password, or put theirs in its place.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use router::message::Secret;
use zeroize::Zeroizing;

/// Why the password file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    #[error("--password-file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--password-file {}: permissions {mode:04o} are too open: it must not be accessible by group or others (chmod 600 {})",
        .path.display(),
        .path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
}

/// The longest password file read: a password is a line, not a file.
const MAX_LEN: u64 = 64 << 10;

/// The first line of `path`, once its permissions are checked. Terminals
/// (`/dev/stdin` on a tty) are not checked: their mode says who may write
/// to them, and they are not files a password is kept in.
pub fn read(path: &Path) -> Result<Secret, PasswordFileError> {
    let failed = |source| PasswordFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    let mode = meta.mode() & 0o7777;
    if !meta.file_type().is_char_device() && mode & 0o077 != 0 {
        return Err(PasswordFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_LEN).read_to_end(&mut bytes).map_err(failed)?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the password is not UTF-8",
        ))
    })?;
    Ok(Secret(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with(mode: u32, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn first_line_of_a_private_file() {
        let (_dir, path) = file_with(0o600, "s3cret\r\nsecond line\n");
        assert_eq!(read(&path).unwrap().0, "s3cret");
        let (_dir, path) = file_with(0o400, "");
        assert_eq!(read(&path).unwrap().0, "");
    }

    #[test]
    fn group_or_other_access_is_refused() {
        for mode in [0o640, 0o604, 0o644, 0o660, 0o602] {
            let (_dir, path) = file_with(mode, "s3cret\n");
            let e = read(&path).unwrap_err().to_string();
            assert!(
                e.contains(&format!("permissions {mode:04o} are too open")),
                "{e}"
            );
            assert!(!e.contains('\n') && !e.contains("s3cret"), "{e}");
        }
    }
}
