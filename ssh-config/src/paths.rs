//! The local user and their home directory, as `~`, `%d` and `%u` need them.

use std::path::PathBuf;

/// The local user's home: from the passwd database, as OpenSSH takes it
/// for `~`, `%d` and `~/.ssh` (an inherited `$HOME` may be another
/// user's); `$HOME` only when the database has no entry.
pub fn home_dir() -> PathBuf {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The local user's name.
pub fn local_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}
