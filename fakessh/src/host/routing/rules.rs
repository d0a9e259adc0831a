//! Which chain serves a hostname: the first rule whose patterns match it,
//! command line first (`--host` in order, then `--to`), then the config
//! file (its `[[host]]` entries in order, then its `to`); else
//! `ssh:[USER@]HOST[:PORT]` on demand.

use std::fmt;
use std::path::{Path, PathBuf};

use router::hop::{Chain, Hop};

use crate::cli::{FileRule, HostFlag};

use super::template::{ChainTemplate, ExpandError, Target, TemplateError};

/// Where a rule was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    File { path: PathBuf, line: usize },
}

/// `--host`/`[[host]]` (some hostnames) or `--to`/`to` (all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Host,
    To,
}

/// One routing rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: RuleKind,
    /// ssh_config patterns: `*`, `?`, `!` negation, comma lists.
    pub patterns: String,
    pub template: ChainTemplate,
    pub origin: Origin,
    /// Where the agents of this rule's chains are kept (`agent-dir`).
    pub agent_dir: Option<String>,
}

/// A rule whose chain does not parse.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("--host {pattern}: {source}")]
    Template {
        pattern: String,
        source: TemplateError,
    },
    #[error("--to {text}: {source}")]
    To { text: String, source: TemplateError },
    /// A rule of the config file: its `[[host]]` table's chain, or `to`.
    #[error("{} line {line}: {message}", .path.display())]
    File {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The routing table, in the order rules are tried.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub rules: Vec<Rule>,
}

/// The chain a hostname gets, and the rule that gave it (none: on demand).
pub struct Route<'a> {
    pub chain: Result<Chain, ExpandError>,
    pub rule: Option<&'a Rule>,
}

impl Rule {
    /// `--host PATTERN=CHAIN`.
    pub fn from_host_flag(flag: &HostFlag) -> Result<Rule, MappingError> {
        let template =
            ChainTemplate::parse(&flag.chain).map_err(|source| MappingError::Template {
                pattern: flag.patterns.clone(),
                source,
            })?;
        Ok(Rule {
            kind: RuleKind::Host,
            patterns: flag.patterns.clone(),
            template,
            origin: Origin::CommandLine,
            agent_dir: None,
        })
    }

    /// A config file's `[[host]]` table, as the `--host` it stands for.
    pub fn from_file_host(
        flag: &HostFlag,
        path: &Path,
        written: &FileRule,
    ) -> Result<Rule, MappingError> {
        let template = ChainTemplate::parse(&flag.chain).map_err(|e| MappingError::File {
            path: path.to_path_buf(),
            line: written.chain_line,
            message: format!("chain: {e}"),
        })?;
        Ok(Rule {
            kind: RuleKind::Host,
            patterns: flag.patterns.clone(),
            template,
            origin: Origin::File {
                path: path.to_path_buf(),
                line: written.line,
            },
            agent_dir: written.agent_dir.clone(),
        })
    }

    /// A config file's `to`, written at `line`.
    pub fn from_file_to(text: &str, path: &Path, line: usize) -> Result<Rule, MappingError> {
        let template = ChainTemplate::parse(text).map_err(|e| MappingError::File {
            path: path.to_path_buf(),
            line,
            message: format!("to: {e}"),
        })?;
        Ok(Rule {
            kind: RuleKind::To,
            patterns: "*".into(),
            template,
            origin: Origin::File {
                path: path.to_path_buf(),
                line,
            },
            agent_dir: None,
        })
    }

    /// `--to CHAIN`.
    pub fn from_to_flag(text: &str) -> Result<Rule, MappingError> {
        let template = ChainTemplate::parse(text).map_err(|source| MappingError::To {
            text: text.to_string(),
            source,
        })?;
        Ok(Rule {
            kind: RuleKind::To,
            patterns: "*".into(),
            template,
            origin: Origin::CommandLine,
            agent_dir: None,
        })
    }

    /// Whether this rule serves `host`.
    pub fn matches(&self, host: &str) -> bool {
        self.kind == RuleKind::To || ssh_config::host_in_pattern_list(&self.patterns, host)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.kind) {
            (Origin::CommandLine, RuleKind::Host) => {
                write!(
                    f,
                    "--host '{}={}' (command line)",
                    self.patterns, self.template
                )
            }
            (Origin::CommandLine, RuleKind::To) => {
                write!(f, "--to '{}' (command line)", self.template)
            }
            (Origin::File { path, line }, RuleKind::Host) => write!(
                f,
                "host {:?} = {:?} ({} line {line})",
                self.patterns,
                self.template.to_string(),
                path.display()
            ),
            (Origin::File { path, line }, RuleKind::To) => write!(
                f,
                "to = {:?} ({} line {line})",
                self.template.to_string(),
                path.display()
            ),
        }
    }
}

impl Routing {
    /// The first rule that serves `host`.
    pub fn rule_for(&self, host: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(host))
    }

    /// The chain for a client's `host` (with its `user` and `port` if it
    /// gave them). `defaults` supplies the user and port the ssh config
    /// resolves for the host, asked only if a template needs them.
    pub fn route(
        &self,
        host: &str,
        user: Option<&str>,
        port: Option<u16>,
        defaults: impl FnOnce(&str) -> (String, u16),
    ) -> Route<'_> {
        let Some(rule) = self.rule_for(host) else {
            let chain = Chain {
                hops: vec![Hop::Ssh {
                    user: user.map(str::to_string),
                    host: host.to_string(),
                    port,
                }],
            };
            return Route {
                chain: Ok(chain),
                rule: None,
            };
        };
        let (default_user, default_port) = match (rule.template.wants_user_or_port(), user, port) {
            (false, _, _) | (true, Some(_), Some(_)) => (String::new(), 22),
            (true, _, _) => defaults(host),
        };
        let target = Target {
            host,
            user: user.unwrap_or(&default_user),
            port: port.unwrap_or(default_port),
        };
        Route {
            chain: rule.template.expand(&target),
            rule: Some(rule),
        }
    }

    /// The chain of the first `--to`/`to`, if it has no tokens: connected
    /// before COMMAND runs, so that a broken chain fails at once.
    pub fn fixed_default(&self) -> Option<&Chain> {
        self.rules
            .iter()
            .find(|r| r.kind == RuleKind::To)
            .and_then(|r| r.template.fixed())
    }

    /// When rules exist but none serves `host`, say so: the user probably
    /// forgot one.
    pub fn unmapped_hint(&self, host: &str) -> Option<String> {
        if self.rules.is_empty() || self.rule_for(host).is_some() {
            return None;
        }
        let known: Vec<&str> = self.rules.iter().map(|r| r.patterns.as_str()).collect();
        Some(format!(
            "hint: no rule matches host '{host}' (patterns: {}); it was tried as ssh:{host}; use --host '{host}=CHAIN'",
            known.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(flags: &[&str], to: Option<&str>) -> Routing {
        let mut rules: Vec<Rule> = flags
            .iter()
            .map(|f| Rule::from_host_flag(&f.parse().unwrap()).unwrap())
            .collect();
        rules.extend(to.map(|t| Rule::from_to_flag(t).unwrap()));
        Routing { rules }
    }

    fn chain(r: &Routing, host: &str) -> String {
        let route = r.route(host, None, None, |_| ("cfguser".into(), 2200));
        match route.chain {
            Ok(c) => c.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn first_matching_pattern_wins_then_to_then_on_demand() {
        let r = routing(
            &[
                "web9=local",
                "web*,!web5=ssh:deploy@%h,sudo:root",
                "db?=ssh:%r@%h:%p",
            ],
            None,
        );
        assert_eq!(chain(&r, "web9"), "local");
        assert_eq!(chain(&r, "web3"), "ssh:deploy@web3,sudo:root");
        assert_eq!(chain(&r, "WEB3"), "ssh:deploy@WEB3,sudo:root");
        assert_eq!(chain(&r, "web5"), "ssh:web5", "negated: on demand");
        assert_eq!(chain(&r, "db1"), "ssh:cfguser@db1:2200");
        assert!(r.unmapped_hint("web5").unwrap().contains("web*,!web5"));
        assert!(r.unmapped_hint("web3").is_none());
        let r = routing(&["web*=local"], Some("ssh:%h,sudo"));
        assert_eq!(chain(&r, "mail"), "ssh:mail,sudo:root");
        assert!(r.fixed_default().is_none());
        let r = routing(&[], Some("local,local"));
        assert_eq!(r.fixed_default().unwrap().to_string(), "local,local");
    }

    #[test]
    fn the_client_user_and_port_come_first() {
        let r = routing(&["*=ssh:%r@%h:%p"], None);
        let route = r.route("h", Some("me"), Some(2), |_| panic!("not needed"));
        assert_eq!(route.chain.unwrap().to_string(), "ssh:me@h:2");
    }

    #[test]
    fn bad_flags() {
        assert!("web".parse::<HostFlag>().is_err());
        assert!("=local".parse::<HostFlag>().is_err());
        let e = Rule::from_host_flag(&"web=bogus".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--host web: invalid chain"), "{e}");
        let e = Rule::from_to_flag("ssh:%q").unwrap_err().to_string();
        assert!(e.contains("unknown token %q"), "{e}");
    }

    #[test]
    fn rules_say_where_they_come_from() {
        let rule = Rule::from_host_flag(&"web*=ssh:%h".parse().unwrap()).unwrap();
        assert_eq!(rule.to_string(), "--host 'web*=ssh:%h' (command line)");
        let file = Rule {
            origin: Origin::File {
                path: "/etc/x".into(),
                line: 4,
            },
            ..rule
        };
        assert_eq!(
            file.to_string(),
            "host \"web*\" = \"ssh:%h\" (/etc/x line 4)"
        );
    }

    #[test]
    fn a_file_rule_names_its_file_and_line() {
        let path = Path::new("/etc/team/config");
        let written = FileRule {
            line: 4,
            chain_line: 5,
            agent_dir: Some("/dev/shm/mfs".into()),
        };
        let rule = Rule::from_file_host(&"w*=ssh:%h".parse().unwrap(), path, &written).unwrap();
        assert_eq!(
            rule.to_string(),
            "host \"w*\" = \"ssh:%h\" (/etc/team/config line 4)"
        );
        assert_eq!(rule.agent_dir.as_deref(), Some("/dev/shm/mfs"));
        let e = Rule::from_file_host(&"w*=ssh:%q".parse().unwrap(), path, &written).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/team/config line 5: chain: unknown token %q"),
            "{e}"
        );
        let to = Rule::from_file_to("ssh:%h", path, 1).unwrap();
        assert_eq!(to.to_string(), "to = \"ssh:%h\" (/etc/team/config line 1)");
        let e = Rule::from_file_to("ssh:%", path, 2).unwrap_err();
        assert!(
            e.to_string().starts_with("/etc/team/config line 2: to: "),
            "{e}"
        );
    }
}
