//! Hops and chains: what users write (`--to ssh:deploy@web1,sudo:root`),
//! and the form in which a parent asks an agent to start the next hop.
//!
//! ```text
//! CHAIN := HOP[,HOP]...
//! HOP   := local | ssh:[USER@]HOST[:PORT] | sudo[:USER] | su[:USER] | doas[:USER]
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One step from where the previous hop stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hop {
    /// Our own executable in agent mode, same user, no sshd.
    Local,
    /// An ssh connection (always made by the host, through the hop before
    /// it if there is one).
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
    /// `sudo -u USER`, under a hybrid pty.
    Sudo { user: String },
    /// `su USER`, under a hybrid pty.
    Su { user: String },
    /// `doas -u USER`, under a hybrid pty.
    Doas { user: String },
}

/// A whole route from the host to the context that runs sessions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Chain {
    pub hops: Vec<Hop>,
}

/// What is wrong with one hop's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HopSyntax {
    #[error("empty chain")]
    Empty,
    #[error(
        "unknown hop {0:?} (expected local, ssh:[USER@]HOST[:PORT], sudo[:USER], su[:USER] or doas[:USER])"
    )]
    UnknownKind(String),
    #[error("`local` takes no argument")]
    LocalArgument,
    #[error("{0:?} is not a valid user name")]
    BadUser(String),
    #[error("ssh hop needs a host: ssh:[USER@]HOST[:PORT]")]
    MissingHost,
    #[error("unclosed '[' in {0:?}")]
    UnclosedBracket(String),
    #[error("junk {0:?} after ']'")]
    JunkAfterBracket(String),
    #[error("bad port {0:?}")]
    BadPort(String),
}

/// A chain that does not parse; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chain {chain:?}: {reason}")]
pub struct ChainError {
    pub chain: String,
    pub reason: HopSyntax,
}

impl Hop {
    /// The account a privilege hop changes to.
    pub fn target_user(&self) -> Option<&str> {
        match self {
            Hop::Sudo { user } | Hop::Su { user } | Hop::Doas { user } => Some(user),
            Hop::Local | Hop::Ssh { .. } => None,
        }
    }
}

impl FromStr for Hop {
    type Err = HopSyntax;

    fn from_str(s: &str) -> Result<Self, HopSyntax> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let user_of = |arg: Option<&str>| match arg {
            None => Ok("root".to_string()),
            Some(u) if valid_user(u) => Ok(u.to_string()),
            Some(u) => Err(HopSyntax::BadUser(u.to_string())),
        };
        match kind {
            "local" if arg.is_none() => Ok(Hop::Local),
            "local" => Err(HopSyntax::LocalArgument),
            "ssh" => parse_ssh(arg.unwrap_or("")),
            "sudo" => Ok(Hop::Sudo {
                user: user_of(arg)?,
            }),
            "su" => Ok(Hop::Su {
                user: user_of(arg)?,
            }),
            "doas" => Ok(Hop::Doas {
                user: user_of(arg)?,
            }),
            other => Err(HopSyntax::UnknownKind(other.to_string())),
        }
    }
}

fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

fn parse_ssh(target: &str) -> Result<Hop, HopSyntax> {
    let (user, host, port) = parse_destination(target)?;
    Ok(Hop::Ssh { user, host, port })
}

/// `[USER@]HOST[:PORT]` (IPv6 in brackets, or bare), as in an `ssh:` hop
/// or a ProxyJump entry.
pub fn parse_destination(target: &str) -> Result<(Option<String>, String, Option<u16>), HopSyntax> {
    let (user, hostport) = match target.rsplit_once('@') {
        Some((u, h)) if valid_user(u) => (Some(u.to_string()), h),
        Some((u, _)) => return Err(HopSyntax::BadUser(u.to_string())),
        None => (None, target),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| HopSyntax::UnclosedBracket(hostport.to_string()))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| HopSyntax::JunkAfterBracket(t.to_string()))?,
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
        return Err(HopSyntax::MissingHost);
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(HopSyntax::BadPort(p.to_string())),
        })
        .transpose()?;
    Ok((user, host.to_string(), port))
}

impl FromStr for Chain {
    type Err = ChainError;

    fn from_str(s: &str) -> Result<Self, ChainError> {
        let err = |reason| ChainError {
            chain: s.to_string(),
            reason,
        };
        if s.trim().is_empty() {
            return Err(err(HopSyntax::Empty));
        }
        let hops = s
            .split(',')
            .map(|h| h.trim().parse::<Hop>().map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain { hops })
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::Local => write!(f, "local"),
            Hop::Ssh { user, host, port } => {
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
            Hop::Sudo { user } => write!(f, "sudo:{user}"),
            Hop::Su { user } => write!(f, "su:{user}"),
            Hop::Doas { user } => write!(f, "doas:{user}"),
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
    /// The first `len` hops.
    pub fn prefix(&self, len: usize) -> Chain {
        Chain {
            hops: self.hops[..len].to_vec(),
        }
    }

    /// The last hop, and the chain before it (`None` when it is the first).
    pub fn split_last(&self) -> Option<(&Hop, Option<Chain>)> {
        let (last, before) = self.hops.split_last()?;
        Some((
            last,
            (!before.is_empty()).then(|| self.prefix(before.len())),
        ))
    }
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
            vec![Hop::Sudo {
                user: "root".into()
            }]
        );
        let c: Chain = "ssh:fe80::1".parse().unwrap();
        assert_eq!(c.to_string(), "ssh:[fe80::1]");
        let chain: Chain = "local,sudo".parse().unwrap();
        let (last, before) = chain.split_last().unwrap();
        assert_eq!(last.target_user(), Some("root"));
        assert_eq!(before.unwrap().to_string(), "local");
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
        let err = "ssh:h:x".parse::<Chain>().unwrap_err();
        assert_eq!(err.to_string(), "invalid chain \"ssh:h:x\": bad port \"x\"");
    }

    #[test]
    fn hops_cross_the_wire() {
        let hop = Hop::Ssh {
            user: Some("u".into()),
            host: "::1".into(),
            port: Some(22),
        };
        let mut buf = Vec::new();
        ciborium::into_writer(&hop, &mut buf).unwrap();
        let back: Hop = ciborium::from_reader(&buf[..]).unwrap();
        assert_eq!(back, hop);
    }
}
