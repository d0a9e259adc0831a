//! `mitogen-fakessh --explain HOST`: the chain a hostname gets, and the
//! rule that gave it (which pattern, on the command line or in which file
//! and line).

use ssh_config::SshConfig;

use super::routing::Routing;

/// `--explain` was given something that is not `[USER@]HOST[:PORT]`.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("--explain {0:?}: expected [USER@]HOST[:PORT]")]
    Destination(String),
    #[error("--explain {0:?}: hostname contains invalid characters")]
    Hostname(String),
    #[error("--explain {host}: {source} (rule: {rule})")]
    Unfit {
        host: String,
        rule: String,
        source: Box<super::routing::ExpandError>,
    },
}

/// What `--explain` prints.
pub fn explain(routing: &Routing, config: &SshConfig, text: &str) -> Result<String, ExplainError> {
    let (user, host, port) = router::hop::parse_destination(text)
        .map_err(|_| ExplainError::Destination(text.to_string()))?;
    if !ssh_config::valid_hostname(&host) {
        return Err(ExplainError::Hostname(text.to_string()));
    }
    let route = routing.route(&host, user.as_deref(), port, |host| {
        defaults_from(config, host)
    });
    let chain = match route.chain {
        Ok(chain) => chain.to_string(),
        Err(source) => {
            return Err(ExplainError::Unfit {
                host,
                rule: route.rule.map(|r| r.to_string()).unwrap_or_default(),
                source: Box::new(source),
            });
        }
    };
    let why = match route.rule {
        Some(rule) => format!("rule: {rule}"),
        None if routing.rules.is_empty() => {
            "rule: none given; reached on demand as ssh:[USER@]HOST[:PORT]".to_string()
        }
        None => "rule: none matches; reached on demand as ssh:[USER@]HOST[:PORT]".to_string(),
    };
    Ok(format!("{host}: {chain}\n  {why}\n"))
}

/// The user and port the ssh config gives `host` (for `%r` and `%p` when
/// the client gave none): `User`, else the local user; `Port`, else 22.
pub fn defaults_from(config: &SshConfig, host: &str) -> (String, u16) {
    match config.resolve(host, None, None) {
        Ok(resolved) => (
            resolved.user.unwrap_or_else(ssh_config::local_user),
            resolved.port,
        ),
        Err(_) => (ssh_config::local_user(), 22),
    }
}
