//! What one destination gets from the configuration: OpenSSH's passes
//! over the lines, first value wins, `Match` evaluated in file order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::file::{self, IncludeBase, Line};
use super::matching::{self, Target};
use super::paths::{expand_hostname, expand_path, home_dir, local_user};

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
    /// CertificateFile entries (besides `KEY-cert.pub`, always looked for).
    pub certificate_files: Vec<PathBuf>,
    pub identities_only: bool,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// HashKnownHosts: learn keys under hashed names.
    pub hash_known_hosts: bool,
    pub proxy_jump: Option<String>,
    /// A command whose stdin and stdout carry the connection (`%` tokens
    /// expanded). ProxyJump and ProxyCommand exclude each other: the one
    /// obtained first wins, as in OpenSSH.
    pub proxy_command: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<usize>,
    /// How often to ask for a password or a key's passphrase
    /// (NumberOfPasswordPrompts; 0 with BatchMode).
    pub password_prompts: u32,
}

/// Parsed ssh_config files, in the order they are read.
#[derive(Clone, Debug, Default)]
pub struct SshConfig {
    lines: Vec<Line>,
}

/// The values one destination obtained, per keyword in the order obtained.
#[derive(Default)]
struct Obtained {
    values: HashMap<String, Vec<String>>,
    /// `proxyjump` or `proxycommand`, whichever came first.
    first_proxy: Option<String>,
}

impl Obtained {
    fn first(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.values
            .get(key)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

impl SshConfig {
    /// The user's file (or `ssh -F`'s): relative `Include`s look in ~/.ssh.
    /// A missing file is an empty configuration.
    pub fn load_user(path: &Path) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(home_dir().join(".ssh"));
        Ok(SshConfig {
            lines: file::read(path, &base)?,
        })
    }

    /// The system's file: relative `Include`s look in /etc/ssh.
    pub fn load_system(path: &Path) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(PathBuf::from("/etc/ssh"));
        Ok(SshConfig {
            lines: file::read(path, &base)?,
        })
    }

    /// Concatenate: earlier files take precedence (first value wins).
    pub fn chain(mut self, later: SshConfig) -> SshConfig {
        self.lines.extend(later.lines);
        self
    }

    /// Parse configuration text (relative `Include`s look in ~/.ssh).
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(home_dir().join(".ssh"));
        let mut lines = Vec::new();
        file::parse(text, "ssh config", &base, &[], 0, &mut lines)?;
        Ok(SshConfig { lines })
    }

    /// Walk the lines for one destination, as OpenSSH does: a first pass,
    /// and a second with `final` true if any `Match final` asked for one.
    fn obtain(&self, alias: &str, user: Option<&str>, port: Option<u16>) -> Obtained {
        let mut got = Obtained::default();
        let local = local_user();
        let final_wanted = self
            .lines
            .iter()
            .any(|l| l.when.iter().any(|c| c.wants_final_pass()));
        for final_pass in [false, true] {
            if final_pass && !final_wanted {
                break;
            }
            // Each block's condition is evaluated once per pass, at the
            // block's first line: no line is obtained between a `Match` and
            // that, so it sees the state OpenSSH sees at the `Match`.
            let mut decided: HashMap<*const matching::Condition, bool> = HashMap::new();
            for line in &self.lines {
                let applies = line.when.iter().all(|cond| {
                    let key = std::sync::Arc::as_ptr(cond);
                    if let Some(&known) = decided.get(&key) {
                        return known;
                    }
                    let host = got
                        .first("hostname")
                        .map(|h| expand_hostname(h, alias))
                        .unwrap_or_else(|| alias.to_string());
                    let remote_user = user
                        .or_else(|| got.first("user"))
                        .unwrap_or(&local)
                        .to_string();
                    let target = Target {
                        original_host: alias,
                        host: &host,
                        user: &remote_user,
                        local_user: &local,
                        tag: got.first("tag"),
                        final_pass,
                        local_addresses: &interface_addresses,
                    };
                    let port = port
                        .map(|p| p.to_string())
                        .or_else(|| got.first("port").map(str::to_string))
                        .unwrap_or_else(|| "22".into());
                    let verdict = cond.holds(
                        &target,
                        &mut |command| match_exec(command, alias, &host, &port, &remote_user),
                        &mut |warning| tracing::warn!("ssh config: {warning}"),
                    );
                    decided.insert(key, verdict);
                    verdict
                });
                if applies {
                    if matches!(line.key.as_str(), "proxyjump" | "proxycommand") {
                        got.first_proxy.get_or_insert_with(|| line.key.clone());
                    }
                    got.values
                        .entry(line.key.clone())
                        .or_default()
                        .push(line.value.clone());
                }
            }
        }
        got
    }

    /// Settings for `alias` with `options` (ssh's `-o`, in order) taking
    /// precedence over every file, as on ssh's command line.
    pub fn resolve_with(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
        options: &[(String, String)],
    ) -> Result<HostConfig, ConfigError> {
        if options.is_empty() {
            return self.resolve(alias, user, port);
        }
        let mut lines: Vec<Line> = options
            .iter()
            .map(|(key, value)| Line {
                when: Vec::new(),
                key: key.to_ascii_lowercase(),
                value: value.clone(),
            })
            .collect();
        lines.extend(self.lines.iter().cloned());
        SshConfig { lines }.resolve(alias, user, port)
    }

    /// Settings for `alias`; `user`/`port` from the chain or the command line
    /// override the file, as ssh's -l and -p do.
    pub fn resolve(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
    ) -> Result<HostConfig, ConfigError> {
        let got = self.obtain(alias, user, port);
        let hostname = got
            .first("hostname")
            .map(|h| expand_hostname(h, alias))
            .unwrap_or_else(|| alias.to_string());
        let port = match port {
            Some(p) => p,
            None => match got.first("port") {
                Some(p) => p.parse::<u16>().map_err(|_| ConfigError::BadPort {
                    value: p.to_string(),
                    host: alias.to_string(),
                })?,
                None => 22,
            },
        };
        let user = user
            .map(str::to_string)
            .or_else(|| got.first("user").map(str::to_string));
        let expand = |p: &str| expand_path(p, alias, &hostname, port, user.as_deref());
        let mut identity_files: Vec<PathBuf> = Vec::new();
        for file in got.all("identityfile").map(expand) {
            // The final pass obtains the first pass's files again.
            if !identity_files.contains(&file) {
                identity_files.push(file);
            }
        }
        let mut user_known: Vec<PathBuf> = got
            .first("userknownhostsfile")
            .map(|v| v.split_whitespace().map(expand).collect())
            .unwrap_or_default();
        if user_known.is_empty() {
            user_known = vec![expand("~/.ssh/known_hosts"), expand("~/.ssh/known_hosts2")];
        }
        let global_known: Vec<PathBuf> = got
            .first("globalknownhostsfile")
            .map(|v| v.split_whitespace().map(expand).collect())
            .unwrap_or_else(|| {
                vec![
                    "/etc/ssh/ssh_known_hosts".into(),
                    "/etc/ssh/ssh_known_hosts2".into(),
                ]
            });
        let strict = match got
            .first("stricthostkeychecking")
            .map(|v| v.to_ascii_lowercase())
        {
            None => StrictHostKeyChecking::Yes,
            Some(v) => match v.as_str() {
                "yes" | "ask" => StrictHostKeyChecking::Yes,
                "accept-new" => StrictHostKeyChecking::AcceptNew,
                "no" | "off" => StrictHostKeyChecking::No,
                other => {
                    return Err(ConfigError::BadValue {
                        keyword: "StrictHostKeyChecking",
                        value: other.to_string(),
                    });
                }
            },
        };
        let number = |key: &str, keyword: &'static str| -> Result<Option<u64>, ConfigError> {
            got.first(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| ConfigError::BadValue {
                        keyword,
                        value: v.to_string(),
                    })
                })
                .transpose()
        };
        let seconds = |key: &str, keyword: &'static str| {
            number(key, keyword).map(|n| n.map(Duration::from_secs))
        };
        let count_max = number("serveralivecountmax", "ServerAliveCountMax")?.map(|n| n as usize);
        let batch = got
            .first("batchmode")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let password_prompts = match got.first("numberofpasswordprompts") {
            _ if batch => 0,
            None => 3,
            Some(v) => v.parse::<u32>().map_err(|_| ConfigError::BadValue {
                keyword: "NumberOfPasswordPrompts",
                value: v.to_string(),
            })?,
        };
        let proxy = |key: &str| {
            got.first(key)
                .filter(|_| got.first_proxy.as_deref() == Some(key))
                .filter(|v| !v.eq_ignore_ascii_case("none"))
        };
        let certificate_files = got.all("certificatefile").map(expand).collect();
        Ok(HostConfig {
            hash_known_hosts: got
                .first("hashknownhosts")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            certificate_files,
            password_prompts,
            alias: alias.to_string(),
            proxy_jump: proxy("proxyjump").map(str::to_string),
            proxy_command: proxy("proxycommand")
                .map(|c| expand_path(c, alias, &hostname, port, user.as_deref()))
                .map(|c| c.to_string_lossy().into_owned()),
            identities_only: got
                .first("identitiesonly")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            connect_timeout: seconds("connecttimeout", "ConnectTimeout")?.filter(|d| !d.is_zero()),
            server_alive_interval: seconds("serveraliveinterval", "ServerAliveInterval")?
                .filter(|d| !d.is_zero()),
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

/// Addresses of the local interfaces that are up, for `Match localnetwork`.
fn interface_addresses() -> Vec<std::net::IpAddr> {
    use nix::net::if_::InterfaceFlags;
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter(|i| i.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|i| i.address)
        .filter_map(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
            (Some(v4), _) => Some(std::net::IpAddr::V4(v4.ip())),
            (_, Some(v6)) => Some(std::net::IpAddr::V6(v6.ip())),
            _ => None,
        })
        .collect()
}

/// `Match exec`: run `command` (its `%` tokens expanded) with the user's
/// shell, stdin and stdout on /dev/null and stderr ours, as OpenSSH does;
/// it matches when it exits 0.
fn match_exec(command: &str, alias: &str, host: &str, port: &str, user: &str) -> bool {
    let port = port.parse().unwrap_or(22);
    let command = expand_path(command, alias, host, port, Some(user));
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let status = std::process::Command::new(&shell)
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) => status.success(),
        Err(e) => {
            tracing::warn!(
                "ssh config: Match exec {}: cannot run {}: {e}",
                command.display(),
                std::path::Path::new(&shell).display()
            );
            false
        }
    }
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
        let cfg = SshConfig::parse(SAMPLE).unwrap();
        let web = cfg.resolve("web1", None, None).unwrap();
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, 2222);
        assert_eq!(web.hostname, "10.0.0.web1");
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
        let cfg =
            SshConfig::parse("Host x\n Port abc\nHost y\n StrictHostKeyChecking maybe\n").unwrap();
        assert!(cfg.resolve("x", None, None).is_err());
        assert!(cfg.resolve("y", None, None).is_err());
    }

    #[test]
    fn match_sees_the_hostname_and_user_obtained_so_far() {
        let cfg = SshConfig::parse(
            "
Host short
    HostName %h.corp.example
Match host *.corp.example !user admin
    User corp
    Port 2200
Match originalhost short user corp
    IdentityFile /keys/corp
Match host *.corp.example
    User too-late
",
        )
        .unwrap();
        let c = cfg.resolve("short", None, None).unwrap();
        assert_eq!(c.hostname, "short.corp.example");
        assert_eq!((c.user.as_deref(), c.port), (Some("corp"), 2200));
        assert_eq!(c.identity_files[0], PathBuf::from("/keys/corp"));
        // A user from the command line is the one `Match user` sees.
        let r = cfg.resolve("short", Some("admin"), None).unwrap();
        assert_eq!((r.user.as_deref(), r.port), (Some("admin"), 22));
        assert!(
            r.identity_files
                .iter()
                .all(|f| f != Path::new("/keys/corp"))
        );
        let other = cfg.resolve("elsewhere", None, None).unwrap();
        assert_eq!(other.user, None);
    }

    #[test]
    fn match_final_applies_in_a_second_pass_after_everything_else() {
        let cfg = SshConfig::parse(
            "
Match final
    User from-final
    Port 2022
Host h
    User from-host
",
        )
        .unwrap();
        let c = cfg.resolve("h", None, None).unwrap();
        // The first pass obtained `User from-host`; the final pass adds only
        // what was still unset.
        assert_eq!((c.user.as_deref(), c.port), (Some("from-host"), 2022));
    }

    #[test]
    fn match_exec_runs_with_tokens_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let cfg = SshConfig::parse(&format!(
            "Match exec \"echo %h %n %p > {m}; test %h = real.example\"\n  User by-exec\nHost *\n  HostName real.example\n",
            m = marker.display()
        ))
        .unwrap();
        // At the Match line no HostName is obtained yet: %h is the alias.
        let c = cfg.resolve("h", None, None).unwrap();
        assert_eq!(c.user, None);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "h h 22\n");
    }

    #[test]
    fn included_files_count_where_the_include_stands() {
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("hosts.conf");
        std::fs::write(&inc, "Host web\n  HostName 192.0.2.7\n  User deploy\n").unwrap();
        let cfg = SshConfig::parse(&format!(
            "Host web\n  Port 2222\nInclude {}\nHost *\n  User nobody\n",
            inc.display()
        ))
        .unwrap();
        let c = cfg.resolve("web", None, None).unwrap();
        assert_eq!(c.hostname, "192.0.2.7");
        assert_eq!((c.user.as_deref(), c.port), (Some("deploy"), 2222));
        // Inside a block that does not apply, the included file is inert.
        let cfg = SshConfig::parse(&format!("Host other\nInclude {}\n", inc.display())).unwrap();
        assert_eq!(cfg.resolve("web", None, None).unwrap().hostname, "web");
    }

    #[test]
    fn command_line_options_come_before_the_files() {
        let cfg =
            SshConfig::parse("Host h\n  IdentityFile /cfg/key\n  Port 2200\n  User cfg\n").unwrap();
        let opts = [
            ("IdentityFile".to_string(), "/cli/key".to_string()),
            (
                "StrictHostKeyChecking".to_string(),
                "accept-new".to_string(),
            ),
            ("Port".to_string(), "2222".to_string()),
        ];
        let c = cfg.resolve_with("h", None, None, &opts).unwrap();
        assert_eq!(
            c.identity_files,
            [PathBuf::from("/cli/key"), PathBuf::from("/cfg/key")]
        );
        assert_eq!(c.strict_host_key_checking, StrictHostKeyChecking::AcceptNew);
        assert_eq!((c.port, c.user.as_deref()), (2222, Some("cfg")));
    }

    #[test]
    fn proxy_jump_and_proxy_command_exclude_each_other() {
        let cfg = SshConfig::parse(
            "Host a\n  ProxyCommand ssh -W %h:%p gw\nHost b\n  HostName b.example\n  Port 2022\n  ProxyJump j\nHost *\n  ProxyJump k\n  ProxyCommand nc %h %p\n",
        )
        .unwrap();
        let a = cfg.resolve("a", None, None).unwrap();
        assert_eq!(
            (a.proxy_jump.as_deref(), a.proxy_command.as_deref()),
            (None, Some("ssh -W a:22 gw"))
        );
        let b = cfg.resolve("b", None, None).unwrap();
        assert_eq!(
            (b.proxy_jump.as_deref(), b.proxy_command),
            (Some("j"), None)
        );
        let c = cfg.resolve("c", None, None).unwrap();
        assert_eq!(
            (c.proxy_jump.as_deref(), c.proxy_command),
            (Some("k"), None)
        );
        let none = SshConfig::parse("Host *\n  ProxyCommand none\n  ProxyJump j\n").unwrap();
        let n = none.resolve("x", None, None).unwrap();
        assert_eq!((n.proxy_jump, n.proxy_command), (None, None));
    }
}
