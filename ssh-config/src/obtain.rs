//! The lines one destination obtains: OpenSSH's passes over the lines,
//! `Match` evaluated in file order against the state obtained so far.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::ConfigError;
use super::file::Line;
use super::matching::{self, Target, pattern_list_matches};
use super::paths::local_user;
use super::session::SessionAsked;
use super::tokens::{self, TokenSet, TokenValues};

/// The lines one destination obtained, per keyword in the order obtained.
#[derive(Default)]
pub(crate) struct Obtained {
    values: HashMap<String, Vec<Line>>,
    pub(crate) order: Vec<String>,
    /// `proxyjump` or `proxycommand`, whichever came first.
    pub(crate) first_proxy: Option<String>,
}

impl Obtained {
    pub(crate) fn add(&mut self, line: &Line) {
        if !self.values.contains_key(&line.key) {
            self.order.push(line.key.clone());
        }
        self.values
            .entry(line.key.clone())
            .or_default()
            .push(line.clone());
    }

    pub(crate) fn line(&self, key: &str) -> Option<&Line> {
        self.values.get(key).and_then(|v| v.first())
    }

    /// The first line's (first) argument.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.line(key).map(|l| l.args[0].as_str())
    }

    /// Every argument of every line, in order.
    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = (&Line, &str)> {
        self.values
            .get(key)
            .into_iter()
            .flatten()
            .flat_map(|l| l.args.iter().map(move |a| (l, a.as_str())))
    }
}

/// The destination as the command line (or the chain) names it.
pub(crate) struct Destination<'a> {
    pub alias: &'a str,
    pub user: Option<&'a str>,
    pub port: Option<u16>,
    /// The session asked for (`Match command`, `Match sessiontype`).
    pub session: &'a SessionAsked,
    /// `Match exec` never runs its command and never matches (fuzzing).
    pub no_exec: bool,
}

/// Walk `lines` for one destination, as OpenSSH does: a first pass, and a
/// second with `final` true if any `Match final` asked for one. A keyword
/// OpenSSH does not know is an error wherever it stands, unless the
/// `IgnoreUnknown` obtained before it names it. A `RefuseConnection` that
/// applies stops it there, as OpenSSH stops.
pub(crate) fn obtain(lines: &[Line], to: &Destination<'_>) -> Result<Obtained, ConfigError> {
    let mut got = Obtained::default();
    let local = local_user();
    let final_wanted = lines
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
        for line in lines {
            if line.known.is_none() {
                let ignored = got
                    .first("ignoreunknown")
                    .is_some_and(|list| pattern_list_matches(list, &line.key, false));
                if ignored {
                    continue;
                }
                return Err(ConfigError::BadOption {
                    at: line.at.clone(),
                    key: line.key.clone(),
                });
            }
            let mut applies = true;
            for cond in &line.when {
                let key = Arc::as_ptr(cond);
                let verdict = match decided.get(&key) {
                    Some(&known) => known,
                    None => {
                        let verdict = evaluate(cond, &got, to, &local, final_pass)?;
                        decided.insert(key, verdict);
                        verdict
                    }
                };
                if !verdict {
                    applies = false;
                    break;
                }
            }
            if applies {
                if line.key == "refuseconnection" {
                    return Err(ConfigError::Refused {
                        at: line.at.clone(),
                        reason: line.args[0].clone(),
                    });
                }
                if matches!(line.key.as_str(), "proxyjump" | "proxycommand") {
                    got.first_proxy.get_or_insert_with(|| line.key.clone());
                }
                got.add(line);
            }
        }
    }
    Ok(got)
}

/// Whether `cond` holds for the destination, in the state `got`.
fn evaluate(
    cond: &matching::Condition,
    got: &Obtained,
    to: &Destination<'_>,
    local: &str,
    final_pass: bool,
) -> Result<bool, ConfigError> {
    let (alias, user, port) = (to.alias, to.user, to.port);
    let host = hostname_so_far(got, alias)?;
    let remote_user = user.or_else(|| got.first("user")).unwrap_or(local);
    let target = Target {
        original_host: alias,
        host: &host,
        user: remote_user,
        local_user: local,
        tag: got.first("tag"),
        command: &to.session.command,
        session_type: to.session.type_name(got.first("sessiontype")),
        final_pass,
        local_addresses: &interface_addresses,
    };
    let values = TokenValues {
        original_host: alias.to_string(),
        host: host.clone(),
        port: port
            .or_else(|| got.first("port").and_then(|p| p.parse().ok()))
            .unwrap_or(22),
        remote_user: remote_user.to_string(),
        host_key_alias: got.first("hostkeyalias").map(str::to_string),
        proxy_jump: got.first("proxyjump").unwrap_or_default().to_string(),
    };
    let mut failure = None;
    let verdict = cond.holds(&target, &mut |command| match tokens::percent(
        command,
        TokenSet::Files,
        &values,
    ) {
        Ok(_) if to.no_exec => false,
        Ok(command) => match_exec(&command),
        Err(e) => {
            failure.get_or_insert(e);
            false
        }
    });
    match failure {
        Some(source) => Err(ConfigError::MatchExec(source)),
        None => Ok(verdict),
    }
}

/// `HostName` as obtained so far (`%h` and `%%` expanded), else the alias.
pub(crate) fn hostname_so_far(got: &Obtained, alias: &str) -> Result<String, ConfigError> {
    let Some(line) = got.line("hostname") else {
        return Ok(alias.to_string());
    };
    let values = TokenValues {
        host: alias.to_string(),
        ..TokenValues::default()
    };
    tokens::percent(&line.args[0], TokenSet::HostName, &values).map_err(|source| {
        ConfigError::Expansion {
            at: line.at.clone(),
            keyword: "HostName",
            source,
        }
    })
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
fn match_exec(command: &str) -> bool {
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let status = std::process::Command::new(&shell)
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) => status.success(),
        Err(e) => {
            tracing::warn!(
                "ssh config: Match exec {command}: cannot run {}: {e}",
                std::path::Path::new(&shell).display()
            );
            false
        }
    }
}

/// SendEnv patterns accumulate over lines; `-pattern` removes earlier ones.
pub(crate) fn send_env(got: &Obtained) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    for (_, value) in got.all("sendenv") {
        match value.strip_prefix('-') {
            Some(removed) => patterns.retain(|p| !pattern_list_matches(removed, p, true)),
            None => patterns.push(value.to_string()),
        }
    }
    patterns
}
