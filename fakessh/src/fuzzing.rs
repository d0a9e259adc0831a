//! Entry points for the cargo-fuzz targets in `fuzz/` and for the corpus
//! replay tests: each takes arbitrary bytes and must never panic.

use crate::hop::bootstrap::Reply;
use crate::hop::ssh::known_hosts::KnownHosts;

/// known_hosts text, read for a few names.
pub fn known_hosts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["web1", "[web1]:2222", "10.0.0.1", ""] {
        let mut known = KnownHosts::default();
        known.add_text(&text, "fuzz", name);
        let _ = known.recorded_types();
    }
}

/// What a remote shell prints while the bootstrap runs, line by line.
pub fn bootstrap_replies(data: &[u8]) {
    for line in data.split(|b| *b == b'\n') {
        match Reply::parse(line) {
            Reply::Error(why) => assert!(!why.contains('\n')),
            Reply::Unknown(line) => assert!(line.starts_with("MFS-")),
            _ => {}
        }
    }
}
