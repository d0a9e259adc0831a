//! Chains of hops: `CHAIN := HOP[,HOP]...`, parsed and printed canonically.
//!
//! ```text
//! HOP := local | ssh:[USER@]HOST[:PORT] | sudo[:USER] | su[:USER] | doas[:USER]
//! ```

use std::fmt;
use std::str::FromStr;

/// One step from where the previous hop stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HopSpec {
    /// Our own executable in agent mode, same user, no sshd.
    Local,
    /// An ssh connection.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
    /// Privilege change on the same machine.
    Sudo {
        user: String,
    },
    Su {
        user: String,
    },
    Doas {
        user: String,
    },
}

/// A whole route from the host to the target context.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Chain {
    pub hops: Vec<HopSpec>,
}

/// Why a chain does not parse; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chain {chain:?}: {reason}")]
pub struct ChainError {
    pub chain: String,
    pub reason: String,
}

impl FromStr for HopSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let user_of = |arg: Option<&str>| -> Result<String, String> {
            match arg {
                None => Ok("root".to_string()),
                Some(u) if valid_user(u) => Ok(u.to_string()),
                Some(u) => Err(format!("{u:?} is not a valid user name")),
            }
        };
        match kind {
            "local" if arg.is_none() => Ok(HopSpec::Local),
            "local" => Err("`local` takes no argument".into()),
            "ssh" => parse_ssh(arg.unwrap_or("")),
            "sudo" => Ok(HopSpec::Sudo {
                user: user_of(arg)?,
            }),
            "su" => Ok(HopSpec::Su {
                user: user_of(arg)?,
            }),
            "doas" => Ok(HopSpec::Doas {
                user: user_of(arg)?,
            }),
            other => Err(format!(
                "unknown hop {other:?} (expected local, ssh:[USER@]HOST[:PORT], sudo[:USER], su[:USER] or doas[:USER])"
            )),
        }
    }
}

fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

fn parse_ssh(target: &str) -> Result<HopSpec, String> {
    let (user, hostport) = match target.rsplit_once('@') {
        Some((u, h)) if valid_user(u) => (Some(u.to_string()), h),
        Some((u, _)) => return Err(format!("{u:?} is not a valid user name")),
        None => (None, target),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {hostport:?}"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("junk {t:?} after ']'"))?,
            ),
        };
        (h, port)
    } else if hostport.matches(':').count() > 1 {
        (hostport, None) // a bare IPv6 address
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("ssh hop needs a host: ssh:[USER@]HOST[:PORT]".into());
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("bad port {p:?}")),
        })
        .transpose()?;
    Ok(HopSpec::Ssh {
        user,
        host: host.to_string(),
        port,
    })
}

impl FromStr for Chain {
    type Err = ChainError;

    fn from_str(s: &str) -> Result<Self, ChainError> {
        let err = |reason: String| ChainError {
            chain: s.to_string(),
            reason,
        };
        if s.trim().is_empty() {
            return Err(err("empty chain".into()));
        }
        let hops = s
            .split(',')
            .map(|h| h.trim().parse::<HopSpec>().map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain { hops })
    }
}

impl fmt::Display for HopSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopSpec::Local => write!(f, "local"),
            HopSpec::Ssh { user, host, port } => {
                write!(f, "ssh:")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    write!(f, "{host}")?;
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
            HopSpec::Sudo { user } => write!(f, "sudo:{user}"),
            HopSpec::Su { user } => write!(f, "su:{user}"),
            HopSpec::Doas { user } => write!(f, "doas:{user}"),
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{hop}")?;
        }
        Ok(())
    }
}

impl Chain {
    /// The chain up to and including hop `i`.
    pub fn prefix(&self, len: usize) -> Chain {
        Chain {
            hops: self.hops[..len].to_vec(),
        }
    }
}

/// `--host NAME=CHAIN`.
pub fn parse_host_mapping(s: &str) -> Result<(String, Chain), String> {
    let (name, chain) = s.split_once('=').ok_or_else(|| {
        format!("--host {s:?}: expected NAME=CHAIN, e.g. --host web=ssh:deploy@web1,sudo:root")
    })?;
    if name.is_empty() {
        return Err(format!("--host {s:?}: empty host name"));
    }
    let chain = chain
        .parse::<Chain>()
        .map_err(|e| format!("--host {name}: {e}"))?;
    Ok((name.to_string(), chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_grammar() {
        for text in [
            "local",
            "local,sudo:root",
            "ssh:deploy@web1,sudo:root",
            "ssh:bastion,ssh:web1:2222,su:app",
            "ssh:deploy@[::1]:2222,doas:root",
        ] {
            let chain: Chain = text.parse().unwrap();
            assert_eq!(chain.to_string(), text);
        }
        let c: Chain = "sudo".parse().unwrap();
        assert_eq!(
            c.hops,
            vec![HopSpec::Sudo {
                user: "root".into()
            }]
        );
        let c: Chain = "ssh:fe80::1".parse().unwrap();
        assert_eq!(c.to_string(), "ssh:[fe80::1]");
    }

    #[test]
    fn rejects_bad_chains() {
        for bad in [
            "",
            "ssh:",
            "ssh:h:0",
            "ssh:h:x",
            "bogus",
            "local:x",
            "sudo:",
            "ssh:[::1",
            "local,,local",
        ] {
            assert!(bad.parse::<Chain>().is_err(), "{bad} should not parse");
        }
        assert!(parse_host_mapping("web").is_err());
        assert_eq!(parse_host_mapping("web=local").unwrap().0, "web");
    }
}
