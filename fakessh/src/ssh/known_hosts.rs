//! The marker lines of known_hosts that russh's reader passes over:
//! `@cert-authority` (a CA whose host certificates are trusted for the
//! names that match) and `@revoked` (a key never to accept), as in
//! sshd(8)'s SSH_KNOWN_HOSTS FILE FORMAT.

use std::path::PathBuf;

use russh::keys::PublicKey;
use tracing::{debug, warn};

use super::config::host_in_pattern_list;

/// What the marker lines say about one destination.
#[derive(Debug, Default)]
pub struct Markers {
    /// CAs trusted to sign host certificates for it.
    pub authorities: Vec<PublicKey>,
    /// Keys (host keys or CAs) that must be refused.
    pub revoked: Vec<PublicKey>,
}

impl Markers {
    /// Read the marker lines of `files` that apply to `host` on `port`
    /// (written `[host]:port` in the file unless the port is 22).
    pub fn read(files: &[PathBuf], host: &str, port: u16) -> Markers {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let mut markers = Markers::default();
        for file in files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                let mut words = line.split_whitespace();
                let (Some(marker), Some(patterns), Some(kind), Some(blob)) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let list = match marker {
                    "@cert-authority" => &mut markers.authorities,
                    "@revoked" => &mut markers.revoked,
                    _ => continue,
                };
                if patterns.starts_with("|1|") {
                    debug!(
                        "{}:{}: hashed names on a marker line are not supported",
                        file.display(),
                        n + 1
                    );
                    continue;
                }
                if !host_in_pattern_list(patterns, &name) {
                    continue;
                }
                match PublicKey::from_openssh(&format!("{kind} {blob}")) {
                    Ok(key) => list.push(key),
                    Err(e) => warn!("{}:{}: unreadable key: {e}", file.display(), n + 1),
                }
            }
        }
        markers
    }

    /// Whether `key` is listed as revoked.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked.iter().any(|r| r.key_data() == key.key_data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoDYZlYt9lNpD/DZrHY59ZN90af3VWIZd9p2fC0bSyy";

    #[test]
    fn marker_lines_apply_by_name_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!(
                "# comment\n@cert-authority *.example.org,!old.example.org {CA} ca\n\
                 plain.example.org {CA}\n@revoked * {CA}\n@cert-authority [10.0.0.1]:2222 {CA}\n"
            ),
        )
        .unwrap();
        let files = [file];
        let web = Markers::read(&files, "web.example.org", 22);
        assert_eq!((web.authorities.len(), web.revoked.len()), (1, 1));
        assert!(web.is_revoked(&PublicKey::from_openssh(CA).unwrap()));
        let old = Markers::read(&files, "old.example.org", 22);
        assert_eq!(old.authorities.len(), 0);
        assert_eq!(Markers::read(&files, "10.0.0.1", 2222).authorities.len(), 1);
        assert_eq!(Markers::read(&files, "10.0.0.1", 22).authorities.len(), 0);
    }
}
