//! The part of ssh_config(5) that a connection needs.
//!
//! OpenSSH semantics: the file is read top to bottom, a `Host` line opens a
//! block that applies when any of its patterns matches (and no `!pattern`
//! does), and for each keyword the first value obtained wins. Keywords we do
//! not use are ignored; `Match` blocks are skipped (never applied).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How unknown and changed host keys are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// Refuse unknown keys (also OpenSSH's `ask`: we never prompt).
    Yes,
    /// Learn unknown keys into known_hosts; refuse changed ones.
    AcceptNew,
    /// Accept anything (and learn unknown keys), like OpenSSH's `no`.
    No,
}

/// Effective settings for one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// The name used on the command line / in the chain.
    pub alias: String,
    pub hostname: String,
    pub user: Option<String>,
    pub port: u16,
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    pub strict_host_key_checking: StrictHostKeyChecking,
    pub proxy_jump: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<usize>,
}

/// Parsed ssh_config text: (patterns, key, value) in file order.
#[derive(Clone, Debug, Default)]
pub struct SshConfig {
    entries: Vec<(Vec<String>, String, String)>,
}

impl SshConfig {
    /// Read `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<SshConfig, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SshConfig::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(e) => Err(format!("cannot read ssh config {}: {e}", path.display())),
        }
    }

    /// Concatenate: earlier files take precedence (first value wins).
    pub fn chain(mut self, later: SshConfig) -> SshConfig {
        self.entries.extend(later.entries);
        self
    }

    pub fn parse(text: &str) -> SshConfig {
        let mut entries = Vec::new();
        let mut patterns = vec!["*".to_string()];
        let mut in_match = false;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = split_keyword(line);
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "host" => {
                    in_match = false;
                    patterns = value.split_whitespace().map(str::to_string).collect();
                }
                "match" => in_match = true,
                _ if in_match => {}
                _ => entries.push((patterns.clone(), key, unquote(value).to_string())),
            }
        }
        SshConfig { entries }
    }

    fn values<'a>(&'a self, alias: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(pats, k, _)| k == key && host_matches(pats, alias))
            .map(|(_, _, v)| v.as_str())
    }

    fn first(&self, alias: &str, key: &str) -> Option<String> {
        self.values(alias, key).next().map(str::to_string)
    }

    /// Settings for `alias`; `user`/`port` from the chain or the command line
    /// override the file, as ssh's -l and -p do.
    pub fn resolve(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
    ) -> Result<HostConfig, String> {
        let hostname = self
            .first(alias, "hostname")
            .unwrap_or_else(|| alias.to_string());
        let port = match port {
            Some(p) => p,
            None => match self.first(alias, "port") {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| format!("ssh config: bad Port {p:?} for host {alias}"))?,
                None => 22,
            },
        };
        let user = user
            .map(str::to_string)
            .or_else(|| self.first(alias, "user"));
        let expand = |p: &str| expand_path(p, alias, &hostname, port, user.as_deref());
        let identity_files: Vec<PathBuf> = self.values(alias, "identityfile").map(expand).collect();
        let mut user_known: Vec<PathBuf> = self
            .first(alias, "userknownhostsfile")
            .map(|v| v.split_whitespace().map(expand).collect())
            .unwrap_or_default();
        if user_known.is_empty() {
            user_known = vec![expand("~/.ssh/known_hosts"), expand("~/.ssh/known_hosts2")];
        }
        let global_known: Vec<PathBuf> = self
            .first(alias, "globalknownhostsfile")
            .map(|v| v.split_whitespace().map(expand).collect())
            .unwrap_or_else(|| {
                vec![
                    "/etc/ssh/ssh_known_hosts".into(),
                    "/etc/ssh/ssh_known_hosts2".into(),
                ]
            });
        let strict = match self
            .first(alias, "stricthostkeychecking")
            .map(|v| v.to_ascii_lowercase())
        {
            None => StrictHostKeyChecking::Yes,
            Some(v) => match v.as_str() {
                "yes" | "ask" => StrictHostKeyChecking::Yes,
                "accept-new" => StrictHostKeyChecking::AcceptNew,
                "no" | "off" => StrictHostKeyChecking::No,
                other => return Err(format!("ssh config: bad StrictHostKeyChecking {other:?}")),
            },
        };
        let seconds = |key: &str| -> Result<Option<Duration>, String> {
            self.first(alias, key)
                .map(|v| {
                    v.parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| format!("ssh config: bad {key} {v:?}"))
                })
                .transpose()
        };
        let count_max = self
            .first(alias, "serveralivecountmax")
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("ssh config: bad ServerAliveCountMax {v:?}"))
            })
            .transpose()?;
        Ok(HostConfig {
            alias: alias.to_string(),
            proxy_jump: self
                .first(alias, "proxyjump")
                .filter(|v| !v.eq_ignore_ascii_case("none")),
            identities_only: self
                .first(alias, "identitiesonly")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            connect_timeout: seconds("connecttimeout")?.filter(|d| !d.is_zero()),
            server_alive_interval: seconds("serveraliveinterval")?.filter(|d| !d.is_zero()),
            server_alive_count_max: count_max,
            hostname,
            user,
            port,
            identity_files,
            user_known_hosts_files: user_known,
            global_known_hosts_files: global_known,
            strict_host_key_checking: strict,
        })
    }
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (&line[..end], rest)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// `Host` pattern list semantics: any positive match, and no negated match.
fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, host) {
                return false;
            }
        } else if glob(p, host) {
            matched = true;
        }
    }
    matched
}

fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// `~` and the `%` tokens OpenSSH expands in file names.
fn expand_path(p: &str, alias: &str, hostname: &str, port: u16, user: Option<&str>) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "
# comment
Host web*  !web-old
    HostName 10.0.0.%h
    User deploy
    Port=2222
    IdentityFile ~/.ssh/id_web
    StrictHostKeyChecking accept-new
Host bastion
    HostName bastion.example.org
    ProxyJump none
Match host foo
    User nobody
Host *
    User fallback
    IdentityFile %d/.ssh/id_ed25519
    ServerAliveInterval 10
    UserKnownHostsFile /tmp/kh1 /tmp/kh2
";

    #[test]
    fn first_value_wins_and_patterns_apply() {
        let cfg = SshConfig::parse(SAMPLE);
        let web = cfg.resolve("web1", None, None).unwrap();
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, 2222);
        assert_eq!(web.hostname, "10.0.0.%h");
        assert_eq!(web.identity_files.len(), 2);
        assert_eq!(
            web.strict_host_key_checking,
            StrictHostKeyChecking::AcceptNew
        );
        assert_eq!(web.server_alive_interval, Some(Duration::from_secs(10)));
        assert_eq!(
            web.user_known_hosts_files,
            vec![PathBuf::from("/tmp/kh1"), PathBuf::from("/tmp/kh2")]
        );
        let old = cfg.resolve("web-old", Some("me"), Some(22)).unwrap();
        assert_eq!(old.user.as_deref(), Some("me"));
        assert_eq!(old.hostname, "web-old");
        let b = cfg.resolve("bastion", None, None).unwrap();
        assert_eq!(b.proxy_jump, None);
        assert_eq!(b.user.as_deref(), Some("fallback"));
        assert_eq!(b.strict_host_key_checking, StrictHostKeyChecking::Yes);
    }

    #[test]
    fn bad_values_are_errors() {
        let cfg = SshConfig::parse("Host x\n Port abc\nHost y\n StrictHostKeyChecking maybe\n");
        assert!(cfg.resolve("x", None, None).is_err());
        assert!(cfg.resolve("y", None, None).is_err());
    }
}
