//! The team config file: host patterns and chains, and defaults for the
//! other flags, in TOML. Read from `--config FILE`, else from
//! `${XDG_CONFIG_HOME:-~/.config}/mitogen-fakessh/config` if it exists.
//! The command line wins over it.
//!
//! ```toml
//! to = "ssh:%h"                     # like --to: every other hostname
//! ssh-config = "fleet_ssh_config"   # like --ssh-config (relative to this file)
//! password-file = "~/.fleet-pw"     # like --password-file
//! agent-dir = "/opt/mitogen-fakessh" # like --agent-dir
//! agent = ["Linux aarch64=/opt/agents/aarch64/mitogen-fakessh"]
//! verbose = 1                       # like -v (0: default, 1..3)
//! quiet = false                     # like -q
//!
//! [[host]]                          # like --host, tried in order
//! pattern = "web*,!web9"
//! chain = "ssh:deploy@%h,sudo:root"
//! agent-dir = "/dev/shm/mfs"        # only for this rule's chains
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::routing::{ChainTemplate, Origin, Rule, RuleKind};

/// What the file says.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub path: Option<PathBuf>,
    /// `[[host]]` rules in order, then `to`.
    pub rules: Vec<Rule>,
    pub ssh_config: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub agent_dir: Option<String>,
    pub agents: Vec<String>,
    pub verbose: Option<u8>,
    pub quiet: Option<bool>,
}

/// A config file that cannot be used; the message names the file and
/// line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} line {line}: {message}", .path.display())]
    Bad {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Text {
    to: Option<Spanned<String>>,
    ssh_config: Option<String>,
    password_file: Option<String>,
    agent_dir: Option<Spanned<String>>,
    #[serde(default)]
    agent: Vec<String>,
    verbose: Option<Spanned<u8>>,
    quiet: Option<bool>,
    #[serde(default)]
    host: Vec<HostText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HostText {
    pattern: Spanned<String>,
    chain: Spanned<String>,
    agent_dir: Option<Spanned<String>>,
}

/// The default place: `${XDG_CONFIG_HOME:-~/.config}/mitogen-fakessh/config`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ssh_config::home_dir().join(".config"))
        .join("mitogen-fakessh/config")
}

impl ConfigFile {
    /// `--config FILE` (`none`: no file), else the default file if it
    /// exists.
    pub fn load(flag: Option<&Path>) -> Result<ConfigFile, ConfigFileError> {
        match flag {
            Some(path) if path == Path::new("none") => Ok(ConfigFile::default()),
            Some(path) => ConfigFile::read(path),
            None => {
                let path = default_path();
                match path.exists() {
                    true => ConfigFile::read(&path),
                    false => Ok(ConfigFile::default()),
                }
            }
        }
    }

    fn read(path: &Path) -> Result<ConfigFile, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parse `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigFileError> {
        let bad = |at: usize, message: String| ConfigFileError::Bad {
            path: path.to_path_buf(),
            line: text[..at.min(text.len())].matches('\n').count() + 1,
            message,
        };
        let parsed: Text = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            bad(at, e.message().trim_end().replace('\n', "; "))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let origin = |at: usize| Origin::File {
            path: path.to_path_buf(),
            line: text[..at.min(text.len())].matches('\n').count() + 1,
        };
        let agent_dir = |dir: &Option<Spanned<String>>| {
            dir.as_ref()
                .map(|d| {
                    crate::hop::bootstrap::agent_dir(d.get_ref())
                        .map_err(|e| bad(d.span().start, format!("agent-dir: {e}")))
                })
                .transpose()
        };
        let mut rules = Vec::new();
        for host in &parsed.host {
            let pattern = host.pattern.get_ref();
            if pattern.trim().is_empty() {
                return Err(bad(host.pattern.span().start, "empty pattern".into()));
            }
            let template = ChainTemplate::parse(host.chain.get_ref())
                .map_err(|e| bad(host.chain.span().start, e.to_string()))?;
            rules.push(Rule {
                kind: RuleKind::Host,
                patterns: pattern.clone(),
                template,
                origin: origin(host.pattern.span().start),
                agent_dir: agent_dir(&host.agent_dir)?,
            });
        }
        if let Some(to) = &parsed.to {
            let template = ChainTemplate::parse(to.get_ref())
                .map_err(|e| bad(to.span().start, format!("to: {e}")))?;
            rules.push(Rule {
                kind: RuleKind::To,
                patterns: "*".into(),
                template,
                origin: origin(to.span().start),
                agent_dir: None,
            });
        }
        if let Some(v) = &parsed.verbose
            && *v.get_ref() > 3
        {
            return Err(bad(v.span().start, "verbose: 0 to 3".into()));
        }
        Ok(ConfigFile {
            path: Some(path.to_path_buf()),
            rules,
            ssh_config: parsed.ssh_config.map(|p| relative_to(dir, &p)),
            password_file: parsed.password_file.map(|p| relative_to(dir, &p)),
            agent_dir: agent_dir(&parsed.agent_dir)?,
            agents: parsed.agent,
            verbose: parsed.verbose.map(|v| v.into_inner()),
            quiet: parsed.quiet,
        })
    }
}

/// `~/x` from the home directory, a relative path from the file's own.
fn relative_to(dir: &Path, path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => ssh_config::home_dir().join(rest),
        None => dir.join(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
        ConfigFile::parse(Path::new("/etc/team/config"), text)
    }

    /// The message `text` is refused with.
    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn rules_and_defaults() {
        let file = parse(
            r#"
to = "ssh:%h"
ssh-config = "fleet"
password-file = "~/pw"
verbose = 2

[[host]]
pattern = "web*"
chain = "ssh:deploy@%h,sudo:root"

[[host]]
pattern = "db?"
chain = "ssh:bastion,ssh:%h"
agent-dir = "/dev/shm/mfs"
"#,
        )
        .unwrap();
        let rules: Vec<String> = file.rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "host \"web*\" = \"ssh:deploy@%h,sudo:root\" (/etc/team/config line 8)",
                "host \"db?\" = \"ssh:bastion,ssh:%h\" (/etc/team/config line 12)",
                "to = \"ssh:%h\" (/etc/team/config line 2)",
            ]
        );
        assert_eq!(file.rules[1].agent_dir.as_deref(), Some("/dev/shm/mfs"));
        assert_eq!(file.ssh_config.unwrap(), Path::new("/etc/team/fleet"));
        assert!(file.password_file.unwrap().ends_with("pw"));
        assert_eq!(file.verbose, Some(2));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = error("to = \"local\"\n\n[[host]]\npattern = \"w*\"\nchain = \"ssh:%q\"\n");
        assert!(
            e.starts_with("/etc/team/config line 5: unknown token %q"),
            "{e}"
        );
        let e = error("to = \"local\"\nbogus = 1\n");
        assert!(
            e.starts_with("/etc/team/config line 2: unknown field `bogus`"),
            "{e}"
        );
        let e = error("to = \n");
        assert!(e.starts_with("/etc/team/config line 1: "), "{e}");
        let e = error("[[host]]\npattern = \"x\"\n");
        assert!(e.contains("missing field `chain`"), "{e}");
        let e = error("verbose = 9\n");
        assert!(e.starts_with("/etc/team/config line 1: verbose"), "{e}");
        let e = error("agent-dir = \"/a$b\"\n");
        assert!(e.starts_with("/etc/team/config line 1: agent-dir"), "{e}");
    }

    #[test]
    fn no_file_is_no_rules() {
        let file = ConfigFile::load(Some(Path::new("none"))).unwrap();
        assert!(file.rules.is_empty() && file.path.is_none());
        let e = ConfigFile::load(Some(Path::new("/nonexistent/config"))).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/config: "), "{e}");
    }
}
