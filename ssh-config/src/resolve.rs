//! Loading ssh_config files, and what one destination gets from them:
//! for each keyword the first value obtained wins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, Place};
use super::file::{self, IncludeBase, Line, Trust};
use super::host_config::{
    HostConfig, StrictHostKeyChecking, bad_value, expand_file, flag, number, parse_port, tilde,
};
use super::obtain::{Destination, hostname_so_far, obtain, send_env};
use super::paths::{home_dir, local_user};
use super::session::SessionAsked;
use super::tokens::{self, TokenSet, TokenValues};

/// Parsed ssh_config files, in the order they are read.
#[derive(Clone, Debug, Default)]
pub struct SshConfig {
    lines: Vec<Line>,
    /// `Match exec` never runs its command and never matches (fuzzing).
    no_exec: bool,
}

impl SshConfig {
    /// `ssh -F`'s file: relative `Include`s look in ~/.ssh. Used whatever
    /// its owner and mode, as OpenSSH uses it (its includes are checked).
    /// A missing file is an empty configuration.
    pub fn load_user(path: &Path) -> Result<SshConfig, ConfigError> {
        SshConfig::load_user_file(path, Trust::AsGiven)
    }

    /// `~/.ssh/config` (or a file in its place): refused, as OpenSSH
    /// refuses it, unless owned by root or us and writable by nobody else.
    fn load_user_checked(path: &Path) -> Result<SshConfig, ConfigError> {
        SshConfig::load_user_file(path, Trust::Checked)
    }

    fn load_user_file(path: &Path, trust: Trust) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(home_dir().join(".ssh"));
        Ok(SshConfig {
            lines: file::read(path, &base, trust)?,
            no_exec: false,
        })
    }

    /// The system's file: relative `Include`s look in /etc/ssh.
    pub fn load_system(path: &Path) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(PathBuf::from("/etc/ssh"));
        Ok(SshConfig {
            lines: file::read(path, &base, Trust::AsGiven)?,
            no_exec: false,
        })
    }

    /// What ssh reads without `-F`: the user's file, then the system's.
    /// As with OpenSSH, a file that cannot be opened counts as empty (an
    /// error inside one still fails).
    pub fn load_default() -> Result<SshConfig, ConfigError> {
        let quiet = |loaded: Result<SshConfig, ConfigError>| match loaded {
            Err(ConfigError::Read { path, source }) => {
                tracing::debug!("ssh config {}: {source}", path.display());
                Ok(SshConfig::default())
            }
            other => other,
        };
        Ok(quiet(SshConfig::load_user_checked(
            &home_dir().join(".ssh/config"),
        ))?
        .chain(quiet(SshConfig::load_system(
            "/etc/ssh/ssh_config".as_ref(),
        ))?))
    }

    /// The same configuration with `Match exec` never running a command.
    #[doc(hidden)]
    pub fn without_exec(mut self) -> SshConfig {
        self.no_exec = true;
        self
    }

    /// Concatenate: earlier files take precedence (first value wins).
    pub fn chain(mut self, later: SshConfig) -> SshConfig {
        self.lines.extend(later.lines);
        self
    }

    /// Parse configuration text (relative `Include`s look in ~/.ssh).
    pub fn parse(text: &str) -> Result<SshConfig, ConfigError> {
        let base = IncludeBase(home_dir().join(".ssh"));
        let mut lines = Vec::new();
        file::parse(text, "ssh config", &base, &[], 0, &mut lines)?;
        Ok(SshConfig {
            lines,
            no_exec: false,
        })
    }
    /// Settings for `alias` with `options` (ssh's `-o`, in order, each as
    /// keyword and the text after it) taking precedence over every file, as
    /// on ssh's command line, for a connection without a session of its
    /// own ([`SessionAsked::transport`]).
    pub fn resolve_with(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
        options: &[(String, String)],
    ) -> Result<HostConfig, ConfigError> {
        self.resolve_for(alias, user, port, options, &SessionAsked::transport())
    }

    /// The same, for `session`: what `Match command` and `Match
    /// sessiontype` test.
    pub fn resolve_for(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
        options: &[(String, String)],
        session: &SessionAsked,
    ) -> Result<HostConfig, ConfigError> {
        if options.is_empty() {
            return self.resolve_session(alias, user, port, session);
        }
        let mut lines = Vec::new();
        for (key, value) in options {
            let text = format!("{key} {value}");
            lines.extend(Line::parse(&text, Place::command_line(), Vec::new())?);
        }
        lines.extend(self.lines.iter().cloned());
        SshConfig {
            lines,
            no_exec: self.no_exec,
        }
        .resolve_session(alias, user, port, session)
    }

    /// Settings for `alias`; `user`/`port` from the chain or the command line
    /// override the file, as ssh's -l and -p do. For a connection without
    /// a session of its own.
    pub fn resolve(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
    ) -> Result<HostConfig, ConfigError> {
        self.resolve_session(alias, user, port, &SessionAsked::transport())
    }

    fn resolve_session(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
        session: &SessionAsked,
    ) -> Result<HostConfig, ConfigError> {
        let got = obtain(
            &self.lines,
            &Destination {
                alias,
                user,
                port,
                session,
                no_exec: self.no_exec,
            },
        )?;
        let hostname = hostname_so_far(&got, alias)?;
        let port = match port {
            Some(p) => p,
            None => match got.line("port") {
                Some(line) => parse_port(line)?,
                None => 22,
            },
        };
        let user = user
            .map(str::to_string)
            .or_else(|| got.first("user").map(str::to_string));
        let values = TokenValues {
            original_host: alias.to_string(),
            host: hostname.clone(),
            port,
            remote_user: user.clone().unwrap_or_else(local_user),
            host_key_alias: got.first("hostkeyalias").map(str::to_string),
            proxy_jump: got.first("proxyjump").unwrap_or_default().to_string(),
        };
        let file = |line: &Line, keyword: &'static str, value: &str| {
            expand_file(value, &values)
                .map_err(|source| ConfigError::Expansion {
                    at: line.at.clone(),
                    keyword,
                    source,
                })
                .map(PathBuf::from)
        };
        let mut identity_files: Vec<PathBuf> = Vec::new();
        for (line, value) in got.all("identityfile") {
            let path = file(line, "IdentityFile", value)?;
            // The final pass obtains the first pass's files again.
            if !identity_files.contains(&path) {
                identity_files.push(path);
            }
        }
        let mut certificate_files = Vec::new();
        for (line, value) in got.all("certificatefile") {
            certificate_files.push(file(line, "CertificateFile", value)?);
        }
        let mut user_known: Vec<PathBuf> = Vec::new();
        if let Some(line) = got.line("userknownhostsfile") {
            for value in &line.args {
                user_known.push(file(line, "UserKnownHostsFile", value)?);
            }
        }
        if user_known.is_empty() {
            user_known = vec![tilde("~/.ssh/known_hosts"), tilde("~/.ssh/known_hosts2")];
        }
        let global_known: Vec<PathBuf> = got
            .line("globalknownhostsfile")
            .map(|l| l.args.iter().map(|v| tilde(v)).collect())
            .unwrap_or_else(|| {
                vec![
                    "/etc/ssh/ssh_known_hosts".into(),
                    "/etc/ssh/ssh_known_hosts2".into(),
                ]
            });
        let strict = match got.line("stricthostkeychecking") {
            None => StrictHostKeyChecking::Yes,
            Some(line) => match line.args[0].to_ascii_lowercase().as_str() {
                "yes" | "ask" | "true" => StrictHostKeyChecking::Yes,
                "accept-new" => StrictHostKeyChecking::AcceptNew,
                "no" | "off" | "false" => StrictHostKeyChecking::No,
                _ => return Err(bad_value(line, "StrictHostKeyChecking")),
            },
        };
        let seconds = |key: &str, keyword| -> Result<Option<Duration>, ConfigError> {
            got.line(key)
                .map(|l| number(l, keyword).map(Duration::from_secs))
                .transpose()
        };
        let count_max = got
            .line("serveralivecountmax")
            .map(|l| number(l, "ServerAliveCountMax").map(|n| n as usize))
            .transpose()?;
        let batch = got
            .line("batchmode")
            .map(|l| flag(l, "BatchMode"))
            .transpose()?;
        let password_prompts = match got.line("numberofpasswordprompts") {
            _ if batch == Some(true) => 0,
            None => 3,
            Some(line) => number(line, "NumberOfPasswordPrompts")? as u32,
        };
        let proxy = |key: &str, keyword| -> Result<Option<String>, ConfigError> {
            let Some(line) = got.line(key) else {
                return Ok(None);
            };
            if got.first_proxy.as_deref() != Some(key) || line.args[0].eq_ignore_ascii_case("none")
            {
                return Ok(None);
            }
            tokens::percent(&line.args[0], TokenSet::Proxy, &values)
                .map(Some)
                .map_err(|source| ConfigError::Expansion {
                    at: line.at.clone(),
                    keyword,
                    source,
                })
        };
        let remote_command = match got.line("remotecommand") {
            Some(line) if !line.args[0].eq_ignore_ascii_case("none") => Some(
                tokens::percent(&line.args[0], TokenSet::Files, &values).map_err(|source| {
                    ConfigError::Expansion {
                        at: line.at.clone(),
                        keyword: "RemoteCommand",
                        source,
                    }
                })?,
            ),
            _ => None,
        };
        Ok(HostConfig {
            hash_known_hosts: got
                .line("hashknownhosts")
                .map(|l| flag(l, "HashKnownHosts"))
                .transpose()?
                .unwrap_or(false),
            certificate_files,
            password_prompts,
            alias: alias.to_string(),
            proxy_jump: proxy("proxyjump", "ProxyJump")?,
            proxy_command: proxy("proxycommand", "ProxyCommand")?,
            identities_only: got
                .line("identitiesonly")
                .map(|l| flag(l, "IdentitiesOnly"))
                .transpose()?
                .unwrap_or(false),
            connect_timeout: seconds("connecttimeout", "ConnectTimeout")?.filter(|d| !d.is_zero()),
            server_alive_interval: seconds("serveraliveinterval", "ServerAliveInterval")?
                .filter(|d| !d.is_zero()),
            server_alive_count_max: count_max,
            send_env: send_env(&got),
            set_env: got
                .line("setenv")
                .map(|l| {
                    l.args
                        .iter()
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            remote_command,
            request_tty: got.first("requesttty").map(str::to_string),
            obtained: got
                .order
                .iter()
                .map(|k| (k.clone(), got.all(k).map(|(_, v)| v.to_string()).collect()))
                .collect(),
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

#[cfg(test)]
mod tests;
