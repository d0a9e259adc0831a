//! Chain templates: a chain whose text holds `%h` (the hostname as the
//! client wrote it), `%r` (the remote user), `%p` (the port) or `%%` (a
//! `%`), expanded per hostname. A template without tokens is a plain
//! chain, parsed once.

use std::fmt;

use router::hop::{Chain, ChainError};

use super::names::{InvalidName, check_names};

/// A chain text with tokens, checked when it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTemplate {
    text: String,
    /// Parsed once when there are no tokens.
    fixed: Option<Chain>,
}

/// Whom a template is expanded for: the client's hostname, and its user
/// and port as the client gave them or as the ssh config resolves them.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub port: u16,
}

/// A template that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown token %{0} in {1:?} (known: %h, %r, %p, %%)")]
    UnknownToken(char, String),
    #[error("a lone % at the end of {0:?} (write %% for a %)")]
    TrailingPercent(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Names(#[from] InvalidName),
}

/// A template that cannot be expanded for one hostname.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("{what} {value:?} cannot go into the chain template {template:?}")]
    Unfit {
        what: &'static str,
        value: String,
        template: String,
    },
    #[error("{template:?} expands to {source}")]
    Chain {
        template: String,
        source: ChainError,
    },
    #[error("{template:?} expands to {source}")]
    Names {
        template: String,
        source: InvalidName,
    },
}

impl ChainTemplate {
    /// Check the tokens (and a token-free chain) now.
    pub fn parse(text: &str) -> Result<ChainTemplate, TemplateError> {
        let mut chars = text.chars();
        let mut tokens = false;
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('h' | 'r' | 'p' | '%') => tokens = true,
                    Some(other) => return Err(TemplateError::UnknownToken(other, text.into())),
                    None => return Err(TemplateError::TrailingPercent(text.into())),
                }
            }
        }
        let template = ChainTemplate {
            text: text.to_string(),
            fixed: None,
        };
        if !tokens {
            let chain: Chain = text.parse()?;
            check_names(&chain)?;
            return Ok(ChainTemplate {
                fixed: Some(chain),
                ..template
            });
        }
        // A template that fails for an ordinary name fails for all: say so
        // now rather than at every session.
        template
            .expand(&Target {
                host: "host.example",
                user: "user",
                port: 22,
            })
            .map_err(|e| match e {
                ExpandError::Chain { source, .. } => TemplateError::Chain(source),
                ExpandError::Names { source, .. } => TemplateError::Names(source),
                ExpandError::Unfit { .. } => unreachable!("the sample target fits"),
            })?;
        Ok(template)
    }

    /// The chain when there are no tokens.
    pub fn fixed(&self) -> Option<&Chain> {
        self.fixed.as_ref()
    }

    /// Whether expanding needs the user or port (which may take resolving
    /// the ssh config).
    pub fn wants_user_or_port(&self) -> bool {
        self.fixed.is_none() && (self.text.contains("%r") || self.text.contains("%p"))
    }

    /// The chain for `target`. A value that would change the chain's
    /// structure (a `,`, `@` or bracket in a name) is refused; an IPv6
    /// address goes in brackets.
    pub fn expand(&self, target: &Target) -> Result<Chain, ExpandError> {
        if let Some(chain) = &self.fixed {
            return Ok(chain.clone());
        }
        let unfit = |what: &'static str, value: &str| ExpandError::Unfit {
            what,
            value: value.to_string(),
            template: self.text.clone(),
        };
        let structural = |c: char| matches!(c, ',' | '@' | '[' | ']' | '%');
        if target.host.contains(structural) || target.host.is_empty() {
            return Err(unfit("hostname", target.host));
        }
        if target.user.contains(structural) || target.user.contains(':') {
            return Err(unfit("user", target.user));
        }
        let mut out = String::with_capacity(self.text.len() + target.host.len());
        let mut chars = self.text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('h') if target.host.contains(':') => {
                    out.push('[');
                    out.push_str(target.host);
                    out.push(']');
                }
                Some('h') => out.push_str(target.host),
                Some('r') => out.push_str(target.user),
                Some('p') => out.push_str(&target.port.to_string()),
                _ => out.push('%'),
            }
        }
        let chain: Chain = out.parse().map_err(|source| ExpandError::Chain {
            template: self.text.clone(),
            source,
        })?;
        check_names(&chain).map_err(|source| ExpandError::Names {
            template: self.text.clone(),
            source,
        })?;
        Ok(chain)
    }
}

impl fmt::Display for ChainTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(host: &'a str, user: &'a str) -> Target<'a> {
        Target {
            host,
            user,
            port: 2222,
        }
    }

    #[test]
    fn tokens_expand_per_hostname() {
        let t = ChainTemplate::parse("ssh:deploy@%h,sudo:root").unwrap();
        assert!(t.fixed().is_none());
        assert_eq!(
            t.expand(&target("web3", "me")).unwrap().to_string(),
            "ssh:deploy@web3,sudo:root"
        );
        let t = ChainTemplate::parse("ssh:%r@%h:%p").unwrap();
        assert!(t.wants_user_or_port());
        assert_eq!(
            t.expand(&target("web3", "me")).unwrap().to_string(),
            "ssh:me@web3:2222"
        );
        assert_eq!(
            t.expand(&target("::1", "me")).unwrap().to_string(),
            "ssh:me@[::1]:2222"
        );
    }

    #[test]
    fn a_plain_chain_is_parsed_once() {
        let t = ChainTemplate::parse("local,sudo").unwrap();
        assert_eq!(t.fixed().unwrap().to_string(), "local,sudo:root");
        assert!(!t.wants_user_or_port());
    }

    #[test]
    fn bad_templates_fail_at_start() {
        let e = ChainTemplate::parse("ssh:%x").unwrap_err().to_string();
        assert!(e.contains("unknown token %x"), "{e}");
        assert!(ChainTemplate::parse("ssh:%h%").is_err());
        assert!(ChainTemplate::parse("%h").is_err(), "not a hop");
        assert!(ChainTemplate::parse("bogus").is_err());
        assert_eq!(
            ChainTemplate::parse("ssh:%h%%x").unwrap().to_string(),
            "ssh:%h%%x"
        );
    }

    #[test]
    fn names_cannot_change_the_chain() {
        let t = ChainTemplate::parse("ssh:%h,sudo:root").unwrap();
        for host in ["a,local", "x@y", "a]b", ""] {
            let e = t.expand(&target(host, "u")).unwrap_err();
            assert!(matches!(e, ExpandError::Unfit { .. }), "{host}: {e}");
        }
        let t = ChainTemplate::parse("ssh:%r@%h").unwrap();
        assert!(t.expand(&target("h", "a,b")).is_err());
        assert!(t.expand(&target("h", "a:b")).is_err());
    }
}
