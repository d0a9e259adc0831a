//! Which chain serves a hostname: `--host` mappings, then `--to`, then
//! `ssh:[USER@]HOST[:PORT]` on demand.

use router_core::hop::{Chain, ChainError, Hop};
use router_core::session::SessionRequest;

/// The user's routing table.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub default: Option<Chain>,
    pub hosts: Vec<(String, Chain)>,
}

/// A chain whose ssh hop names a host or user OpenSSH would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{chain}: the host or user of {hop} contains invalid characters")]
pub struct InvalidName {
    pub chain: String,
    pub hop: String,
}

/// Check the names of `chain`'s ssh hops as OpenSSH checks its command
/// line, so that none can inject a command through `%h` or `%r`.
pub fn check_names(chain: &Chain) -> Result<(), InvalidName> {
    for hop in &chain.hops {
        if let Hop::Ssh { user, host, .. } = hop
            && (!ssh_config::valid_hostname(host)
                || user.as_deref().is_some_and(|u| !ssh_config::valid_user(u)))
        {
            return Err(InvalidName {
                chain: chain.to_string(),
                hop: hop.to_string(),
            });
        }
    }
    Ok(())
}

/// A `--host` argument that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("--host {0:?}: expected NAME=CHAIN, e.g. --host web=ssh:deploy@web1,sudo:root")]
    NoEquals(String),
    #[error("--host {0:?}: empty host name")]
    EmptyName(String),
    #[error("--host {name}: {source}")]
    Chain { name: String, source: ChainError },
    #[error("--host {name}: {source}")]
    Names { name: String, source: InvalidName },
}

/// `--host NAME=CHAIN`.
pub fn parse_host_mapping(s: &str) -> Result<(String, Chain), MappingError> {
    let (name, chain) = s
        .split_once('=')
        .ok_or_else(|| MappingError::NoEquals(s.to_string()))?;
    if name.is_empty() {
        return Err(MappingError::EmptyName(s.to_string()));
    }
    let chain = chain
        .parse::<Chain>()
        .map_err(|source| MappingError::Chain {
            name: name.to_string(),
            source,
        })?;
    check_names(&chain).map_err(|source| MappingError::Names {
        name: name.to_string(),
        source,
    })?;
    Ok((name.to_string(), chain))
}

impl Routing {
    /// The chain that serves a session request, and whether it is the
    /// on-demand `ssh:[USER@]HOST[:PORT]` (no `--host` or `--to` names it),
    /// which the client's own ssh options may configure.
    pub fn chain_for(&self, req: &SessionRequest) -> (Chain, bool) {
        if let Some((_, chain)) = self.hosts.iter().find(|(name, _)| *name == req.host) {
            return (chain.clone(), false);
        }
        if let Some(chain) = &self.default {
            return (chain.clone(), false);
        }
        let chain = Chain {
            hops: vec![Hop::Ssh {
                user: req.user.clone(),
                host: req.host.clone(),
                port: req.port,
            }],
        };
        (chain, true)
    }

    /// When `--host` mappings exist but none names `host` (and there is no
    /// `--to`), say so: the user probably forgot one.
    pub fn unmapped_hint(&self, host: &str) -> Option<String> {
        if self.default.is_some()
            || self.hosts.is_empty()
            || self.hosts.iter().any(|(n, _)| n == host)
        {
            return None;
        }
        let known: Vec<&str> = self.hosts.iter().map(|(n, _)| n.as_str()).collect();
        Some(format!(
            "hint: no context for host '{host}' (known: {}); it was tried as ssh:{host}; use --host {host}=CHAIN",
            known.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mappings() {
        assert!(parse_host_mapping("web").is_err());
        assert!(parse_host_mapping("=local").is_err());
        let (name, chain) = parse_host_mapping("web=local,sudo").unwrap();
        assert_eq!(
            (name.as_str(), chain.to_string().as_str()),
            ("web", "local,sudo:root")
        );
        let err = parse_host_mapping("web=bogus").unwrap_err().to_string();
        assert!(err.starts_with("--host web: invalid chain"), "{err}");
    }
}
