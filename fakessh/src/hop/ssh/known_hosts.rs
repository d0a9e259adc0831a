//! known_hosts files as OpenSSH reads them (sshd(8), SSH_KNOWN_HOSTS FILE
//! FORMAT): host patterns with `*`, `?` and `!`, hashed names
//! (`|1|salt|hash`, HMAC-SHA1), `[host]:port` for other ports, and the
//! `@cert-authority` and `@revoked` markers.

use std::path::PathBuf;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;
use tracing::warn;

use ssh_config::host_in_pattern_list;

/// A key recorded for the destination, and where.
#[derive(Debug)]
pub struct Recorded {
    pub key: PublicKey,
    /// `FILE:LINE`, for messages.
    pub at: String,
}

/// What the known_hosts files say about one destination.
#[derive(Debug, Default)]
pub struct KnownHosts {
    /// Its host keys.
    pub keys: Vec<Recorded>,
    /// CAs trusted to sign host certificates for it.
    pub authorities: Vec<PublicKey>,
    /// Keys (host keys or CAs) that must be refused.
    pub revoked: Vec<PublicKey>,
}

/// What is known about a key the server presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// Another key of the same type is recorded (at `FILE:LINE`).
    Changed(String),
    Unknown,
}

impl KnownHosts {
    /// Read the lines of `files` that apply to `host` on `port` (written
    /// `[host]:port` in the file unless the port is 22).
    pub fn read(files: &[PathBuf], host: &str, port: u16) -> KnownHosts {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let mut known = KnownHosts::default();
        for file in files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            known.add_text(&text, &file.display().to_string(), &name);
        }
        known
    }

    /// Take the lines of `text` (named `origin` in messages) that apply to
    /// `name` (`host`, or `[host]:port`).
    pub fn add_text(&mut self, text: &str, origin: &str, name: &str) {
        for (n, line) in text.lines().enumerate() {
            self.add_line(line, name, format!("{origin}:{}", n + 1));
        }
    }

    fn add_line(&mut self, line: &str, name: &str, at: String) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let mut words = line.split_whitespace().peekable();
        let marker = words.next_if(|w| w.starts_with('@'));
        let (Some(hosts), Some(kind), Some(blob)) = (words.next(), words.next(), words.next())
        else {
            return;
        };
        if !hosts_match(hosts, name) {
            return;
        }
        let key = match PublicKey::from_openssh(&format!("{kind} {blob}")) {
            Ok(key) => key,
            Err(e) => return warn!("{at}: unreadable key: {e}"),
        };
        match marker {
            None => self.keys.push(Recorded { key, at }),
            Some("@cert-authority") => self.authorities.push(key),
            Some("@revoked") => self.revoked.push(key),
            Some(other) => warn!("{at}: unknown marker {other}"),
        }
    }

    /// Whether `key` is listed as revoked.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked.iter().any(|r| r.key_data() == key.key_data())
    }

    /// Judge a plain host key: known, changed (another key of its type is
    /// recorded), or unknown. A key of another type than those recorded is
    /// unknown, not changed, as in OpenSSH.
    pub fn verdict(&self, key: &PublicKey) -> Verdict {
        if self.keys.iter().any(|r| r.key.key_data() == key.key_data()) {
            return Verdict::Known;
        }
        match self
            .keys
            .iter()
            .find(|r| same_type(&r.key.algorithm(), &key.algorithm()))
        {
            Some(r) => Verdict::Changed(r.at.clone()),
            None => Verdict::Unknown,
        }
    }

    /// The key types recorded, so the server can be asked for one of them
    /// first (OpenSSH orders its HostKeyAlgorithms the same way).
    pub fn recorded_types(&self) -> Vec<Algorithm> {
        let mut types: Vec<Algorithm> = Vec::new();
        for r in &self.keys {
            let alg = r.key.algorithm();
            if !types.iter().any(|t| same_type(t, &alg)) {
                types.push(alg);
            }
        }
        types
    }
}

/// Record `key` for `host`:`port` at the end of `file` (created, with a
/// 0700 directory, if missing), the name hashed when `hash` is set
/// (HashKnownHosts), as `ssh-keygen -H` would write it.
pub fn learn(
    file: &std::path::Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    hash: bool,
) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::DirBuilderExt;
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let field = if hash {
        let mut salt = [0u8; 20];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .map_err(std::io::Error::other)?
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", BASE64.encode(&salt), BASE64.encode(&mac))
    } else {
        name
    };
    let blob = key.to_openssh().map_err(std::io::Error::other)?;
    if let Some(dir) = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(file)?;
    let mut last = [0u8; 1];
    let needs_newline =
        f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] != b'\n';
    let line = format!("{}{field} {blob}\n", if needs_newline { "\n" } else { "" });
    f.write_all(line.as_bytes())
}

/// RSA keys are one type whatever hash their signatures use.
pub fn same_type(a: &Algorithm, b: &Algorithm) -> bool {
    a == b || (a.clone().is_rsa() && b.clone().is_rsa())
}

/// A known_hosts host field: comma-separated patterns (`*`, `?`, `!`), or
/// hashed entries.
fn hosts_match(field: &str, name: &str) -> bool {
    if field.starts_with("|1|") {
        return field.split(',').any(|entry| hashed_match(entry, name));
    }
    host_in_pattern_list(field, name)
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.strip_prefix("|1|").unwrap_or("").split('|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoDYZlYt9lNpD/DZrHY59ZN90af3VWIZd9p2fC0bSyy";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILtgre+sS13uUDfwRbzx0W5bknEjFBWQRivqZtDsEiqO";

    fn read(text: &str, host: &str, port: u16) -> KnownHosts {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, text).unwrap();
        KnownHosts::read(&[file], host, port)
    }

    #[test]
    fn marker_lines_apply_by_name_and_port() {
        let text = format!(
            "# comment\n@cert-authority *.example.org,!old.example.org {CA} ca\n\
             plain.example.org {CA}\n@revoked * {CA}\n@cert-authority [10.0.0.1]:2222 {CA}\n"
        );
        let web = read(&text, "web.example.org", 22);
        assert_eq!(
            (web.authorities.len(), web.revoked.len(), web.keys.len()),
            (1, 1, 0)
        );
        assert!(web.is_revoked(&PublicKey::from_openssh(CA).unwrap()));
        assert_eq!(read(&text, "old.example.org", 22).authorities.len(), 0);
        assert_eq!(read(&text, "10.0.0.1", 2222).authorities.len(), 1);
        assert_eq!(read(&text, "10.0.0.1", 22).authorities.len(), 0);
        assert_eq!(read(&text, "plain.example.org", 22).keys.len(), 1);
    }

    #[test]
    fn learned_entries_are_read_back_hashed_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_hosts");
        let key = PublicKey::from_openssh(CA).unwrap();
        learn(&file, "h.example", 2222, &key, true).unwrap();
        std::fs::write(dir.path().join("plain"), "no newline at end").unwrap();
        learn(&dir.path().join("plain"), "p.example", 22, &key, false).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("|1|") && !text.contains("h.example"),
            "{text}"
        );
        let read = |f: &str, h: &str, p| KnownHosts::read(&[dir.path().join(f)], h, p);
        assert_eq!(
            read("sub/known_hosts", "h.example", 2222).verdict(&key),
            Verdict::Known
        );
        assert_eq!(
            read("sub/known_hosts", "h.example", 22).verdict(&key),
            Verdict::Unknown
        );
        let plain = std::fs::read_to_string(dir.path().join("plain")).unwrap();
        assert!(
            plain.starts_with("no newline at end\np.example ssh-ed25519 "),
            "{plain}"
        );
        assert_eq!(read("plain", "p.example", 22).verdict(&key), Verdict::Known);
    }

    #[test]
    fn patterns_hashes_and_verdicts() {
        // `ssh-keygen -H` of "hashed.example.org" with this salt.
        let salt = [7u8; 20];
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"hashed.example.org")
            .finalize()
            .into_bytes();
        let hashed = format!("|1|{}|{}", BASE64.encode(&salt), BASE64.encode(&mac));
        let text = format!("*.lan,!printer.lan\t{CA}\n{hashed} {OTHER}\n");
        let key = PublicKey::from_openssh(CA).unwrap();
        let other = PublicKey::from_openssh(OTHER).unwrap();
        let lan = read(&text, "nas.lan", 22);
        assert_eq!(lan.verdict(&key), Verdict::Known);
        assert!(matches!(lan.verdict(&other), Verdict::Changed(at) if at.ends_with(":1")));
        assert_eq!(
            read(&text, "printer.lan", 22).verdict(&key),
            Verdict::Unknown
        );
        assert_eq!(
            read(&text, "hashed.example.org", 22).verdict(&other),
            Verdict::Known
        );
        assert_eq!(
            read(&text, "other.example.org", 22).verdict(&other),
            Verdict::Unknown
        );
    }
}
