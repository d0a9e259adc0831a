//! The settings one destination gets, and how a line's value is read.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, LineProblem};
use super::file::Line;
use super::paths::home_dir;
use super::tokens::{self, TokenSet, TokenValues};

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
    /// SendEnv patterns, every line's, `-pattern` removing earlier ones.
    pub send_env: Vec<String>,
    /// SetEnv `NAME=VALUE` pairs (the first line's, as in OpenSSH).
    pub set_env: Vec<(String, String)>,
    /// RemoteCommand (tokens expanded), unless `none`.
    pub remote_command: Option<String>,
    /// RequestTTY, as written.
    pub request_tty: Option<String>,
    /// Every keyword obtained, with the values of its lines, in the order
    /// obtained (for `ssh -G`).
    pub obtained: Vec<(String, Vec<String>)>,
}

impl HostConfig {
    /// The identity files, or the ones tried when none is configured
    /// (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`).
    pub fn identity_files_or_default(&self) -> Vec<PathBuf> {
        if !self.identity_files.is_empty() {
            return self.identity_files.clone();
        }
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| home_dir().join(".ssh").join(n))
            .collect()
    }

    /// The first value obtained for `keyword` (lower case), as ssh -G
    /// would print it.
    pub fn obtained(&self, keyword: &str) -> Option<&str> {
        self.obtained
            .iter()
            .find(|(k, _)| k == keyword)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

/// A file name: `~`, then `${VAR}`, then the `%` tokens.
pub(crate) fn expand_file(value: &str, values: &TokenValues) -> Result<String, tokens::TokenError> {
    let value = tilde(value).to_string_lossy().into_owned();
    let value = tokens::environment(&value)?;
    tokens::percent(&value, TokenSet::Files, values)
}

/// `~/` at the start means our home.
pub(crate) fn tilde(value: &str) -> PathBuf {
    match value.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None if value == "~" => home_dir(),
        None => PathBuf::from(value),
    }
}

pub(crate) fn parse_port(line: &Line) -> Result<u16, ConfigError> {
    match line.args[0].parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError::Line {
            at: line.at.clone(),
            problem: LineProblem::BadPort(line.args[0].clone()),
        }),
    }
}

pub(crate) fn bad_value(line: &Line, keyword: &'static str) -> ConfigError {
    ConfigError::Line {
        at: line.at.clone(),
        problem: LineProblem::BadValue {
            keyword,
            value: line.args[0].clone(),
        },
    }
}

pub(crate) fn number(line: &Line, keyword: &'static str) -> Result<u64, ConfigError> {
    line.args[0].parse().map_err(|_| bad_value(line, keyword))
}

pub(crate) fn flag(line: &Line, keyword: &'static str) -> Result<bool, ConfigError> {
    match line.args[0].to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(bad_value(line, keyword)),
    }
}
