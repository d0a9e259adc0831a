//! Entry points for the cargo-fuzz targets in `fuzz/` and the corpus
//! replay tests: arbitrary bytes as configuration text, which must never
//! make us panic. `Match exec` runs nothing and `Include` is left out, so
//! fuzz input neither runs commands nor reads files.

use crate::tokens::{TokenSet, TokenValues};
use crate::{SshConfig, options, print, split, tokens};

/// `data` as an ssh_config file, resolved for a few destinations; each of
/// its lines as a `-o` option, as words and as a value with tokens.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().to_ascii_lowercase().starts_with("include"))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Ok(cfg) = SshConfig::parse(&text) {
        let cfg = cfg.without_exec();
        for (host, user, port) in [("web1", None, None), ("db", Some("root"), Some(2222))] {
            if let Ok(resolved) = cfg.resolve(host, user, port) {
                let _ = print::config(&resolved, "me");
            }
        }
    }
    let values = TokenValues {
        original_host: "h".into(),
        host: "h.example".into(),
        port: 22,
        remote_user: "u".into(),
        host_key_alias: None,
        proxy_jump: String::new(),
    };
    for line in text.lines() {
        let _ = options::check(line, Some("x*"));
        let _ = split::words(line);
        let _ = split::keyword(line);
        let _ = tokens::environment(line);
        for set in [TokenSet::HostName, TokenSet::Proxy, TokenSet::Files] {
            let _ = tokens::percent(line, set, &values);
        }
        let _ = crate::valid_hostname(line);
        let _ = crate::valid_user(line);
    }
}
