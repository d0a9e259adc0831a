//! Names and paths in ssh_config values: `~`, the `%` tokens, the local
//! user and home directory.

use std::path::PathBuf;

/// `HostName` accepts `%h` (the name as given) and `%%`.
pub fn expand_hostname(value: &str, alias: &str) -> String {
    value
        .replace("%%", "\0")
        .replace("%h", alias)
        .replace('\0', "%")
}

/// `~` and the `%` tokens OpenSSH expands in file names.
pub fn expand_path(p: &str, alias: &str, hostname: &str, port: u16, user: Option<&str>) -> PathBuf {
    let home = home_dir();
    let mut out = String::new();
    let mut chars = p.chars().peekable();
    if p.starts_with("~/") || p == "~" {
        out.push_str(&home.to_string_lossy());
        chars.next();
    }
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home.to_string_lossy()),
            Some('h') => out.push_str(hostname),
            Some('n') => out.push_str(alias),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(user.unwrap_or("")),
            Some('u') => out.push_str(&local_user()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

/// The local user's home, from the passwd database if `$HOME` is unset.
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
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
