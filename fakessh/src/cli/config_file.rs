//! The team config file: more arguments, written in TOML. Read from
//! `--config FILE`, else from `${XDG_CONFIG_HOME:-~/.config}/mitogen-fakessh/config`
//! if it exists. A key is the long name of a flag of [`HostArgs`] (all but
//! `--config`), and stands for that flag: a string (or a number) for a
//! flag that takes a value, a list of them for a repeatable one, a boolean for a switch, a
//! number for a count. `[[host]]` tables stand for `--host PATTERN=CHAIN`.
//! The words are read by the same clap definition as the command line's,
//! and the command line wins over them ([`super::layers`]).
//!
//! ```toml
//! to = "ssh:%h"                     # --to: every other hostname
//! ssh-config = "fleet_ssh_config"   # --ssh-config (relative to this file)
//! password-file = "~/.fleet-pw"     # --password-file
//! agent-dir = "/opt/mitogen-fakessh" # --agent-dir
//! lanes = 1                         # --lanes: one SSH channel per hop
//! agent = ["Linux aarch64=/opt/agents/aarch64/mitogen-fakessh"]
//! verbose = 1                       # -v (0: default, 1..3)
//! quiet = false                     # -q
//!
//! [[host]]                          # --host, tried in order
//! pattern = "web*,!web9"
//! chain = "ssh:deploy@%h,sudo:root"
//! agent-dir = "/dev/shm/mfs"        # only for this rule's chains
//! ```
//!
//! [`HostArgs`]: super::HostArgs

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, ValueHint};
use serde::Deserialize;
use toml::Spanned;

use super::host_args::FileRule;
use super::layers::{host_command, one_line, parse as parse_words};

/// The flags that no config file gives: `--config` (a file names no
/// other), and the two that loosen a trust boundary, which must be asked
/// for on the command line of the run that wants them (a team file shared
/// by many must not open a remote listener to the network, or hand one
/// account's ssh-agent to another, for everyone).
pub const NOT_IN_FILE: &[&str] = &[
    "config",
    "forward_agent_across_users",
    "remote_gateway_ports",
];

/// The key of the `[[host]]` tables, which stand for `--host`.
const HOST_TABLES: &str = "host";

/// What the file says, as the flags it stands for.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file's words, parsed by the [`super::HostArgs`] definition.
    pub matches: ArgMatches,
    /// Each `[[host]]` table, in order.
    pub hosts: Vec<FileRule>,
    /// The line of `to`.
    pub to: Option<usize>,
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
struct HostTables {
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

/// The flag a config key stands for (its long name), if any.
pub fn flag_of_key<'a>(command: &'a clap::Command, key: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(key) && !NOT_IN_FILE.contains(&arg.get_id().as_str()))
}

/// Every key a config file may hold.
pub fn keys(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str()))
        .filter_map(|arg| arg.get_long())
        .map(str::to_string)
        .collect()
}

impl ConfigFile {
    /// `--config FILE` (`none`: no file), else the default file if it
    /// exists.
    pub fn load(flag: Option<&Path>) -> Result<Option<ConfigFile>, ConfigFileError> {
        match flag {
            Some(path) if path == Path::new("none") => Ok(None),
            Some(path) => ConfigFile::read(path).map(Some),
            None => {
                let path = default_path();
                match path.exists() {
                    true => ConfigFile::read(&path).map(Some),
                    false => Ok(None),
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
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let bad = |at: usize, message: String| ConfigFileError::Bad {
            path: path.to_path_buf(),
            line: line(at),
            message,
        };
        let toml_error = |e: toml::de::Error| {
            let at = e.span().map_or(0, |s| s.start);
            bad(at, e.message().trim_end().replace('\n', "; "))
        };
        let top: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(toml_error)?;
        let tables: HostTables = toml::from_str(text).map_err(toml_error)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut command = host_command();
        command.build();
        // Keys in the order they are written, so that an error names the
        // first bad one.
        let mut written: Vec<_> = top.iter().collect();
        written.sort_by_key(|(key, _)| key.span().start);
        let mut words: Vec<OsString> = Vec::new();
        let mut hosts = Vec::new();
        let mut to = None;
        for (key, value) in written {
            let name = key.get_ref().as_str();
            let at = value.span().start;
            let mut these = Vec::new();
            if name == HOST_TABLES {
                for host in &tables.host {
                    hosts.push(host_rule(host, &bad, line)?);
                    let mut word = OsString::from("--host=");
                    word.push(format!(
                        "{}={}",
                        host.pattern.get_ref(),
                        host.chain.get_ref()
                    ));
                    these.push(word);
                }
            } else {
                let arg = flag_of_key(&command, name).ok_or_else(|| {
                    let expected: Vec<String> =
                        keys(&command).iter().map(|k| format!("`{k}`")).collect();
                    bad(
                        key.span().start,
                        format!(
                            "unknown field `{name}`, expected one of {}",
                            expected.join(", ")
                        ),
                    )
                })?;
                these = words_for(arg, value.get_ref(), dir)
                    .map_err(|message| bad(at, format!("{name}: {message}")))?;
                if arg.get_id() == "to" {
                    to = Some(line(at));
                }
            }
            // Each key through clap as it comes, so that an error names it.
            words.extend(these);
            parse_words(words.clone()).map_err(|e| bad(at, format!("{name}: {}", one_line(&e))))?;
        }
        let (_, matches) = parse_words(words).map_err(|e| bad(0, one_line(&e)))?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            matches,
            hosts,
            to,
        })
    }
}

/// A `[[host]]` table's rule, checked as far as the file alone can be.
fn host_rule(
    host: &HostText,
    bad: &impl Fn(usize, String) -> ConfigFileError,
    line: impl Fn(usize) -> usize,
) -> Result<FileRule, ConfigFileError> {
    let pattern = host.pattern.get_ref();
    if pattern.trim().is_empty() {
        return Err(bad(host.pattern.span().start, "empty pattern".into()));
    }
    if pattern.contains('=') {
        return Err(bad(
            host.pattern.span().start,
            "a pattern cannot hold =".into(),
        ));
    }
    let agent_dir = host
        .agent_dir
        .as_ref()
        .map(|d| {
            crate::hop::bootstrap::agent_dir(d.get_ref())
                .map_err(|e| bad(d.span().start, format!("agent-dir: {e}")))
        })
        .transpose()?;
    Ok(FileRule {
        line: line(host.pattern.span().start),
        chain_line: line(host.chain.span().start),
        agent_dir,
    })
}

/// The words a key's value stands for, as `arg`'s clap action takes them.
fn words_for(arg: &Arg, value: &toml::Value, dir: &Path) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = format!("--{long}");
    let path_like = matches!(
        arg.get_value_hint(),
        ValueHint::FilePath | ValueHint::DirPath | ValueHint::AnyPath
    );
    let word = |text: &str| {
        let mut word = OsString::from(format!("{flag}="));
        match path_like {
            true => word.push(relative_to(dir, text)),
            false => word.push(text),
        }
        word
    };
    match (arg.get_action(), value) {
        (ArgAction::Set, toml::Value::String(text)) => Ok(vec![word(text)]),
        (ArgAction::Set, toml::Value::Integer(n)) => Ok(vec![word(&n.to_string())]),
        (ArgAction::Append, toml::Value::String(text)) => Ok(vec![word(text)]),
        (ArgAction::Append, toml::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => Ok(word(text)),
                _ => Err("expected a list of strings".to_string()),
            })
            .collect(),
        (ArgAction::SetTrue, toml::Value::Boolean(on)) => Ok(match on {
            true => vec![flag.into()],
            false => vec![],
        }),
        (ArgAction::Count, toml::Value::Integer(n @ 0..=3)) => {
            Ok((0..*n).map(|_| OsString::from(&flag)).collect())
        }
        (ArgAction::Count, _) => Err("0 to 3".to_string()),
        (ArgAction::Set, _) => Err("expected a string".to_string()),
        (ArgAction::Append, _) => Err("expected a string or a list of strings".to_string()),
        (ArgAction::SetTrue, _) => Err("expected true or false".to_string()),
        (action, _) => Err(format!("{action:?} flags cannot be set here")),
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
    use crate::cli::HostArgs;
    use crate::cli::host_args::texts;
    use clap::FromArgMatches;

    fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
        ConfigFile::parse(Path::new("/etc/team/config"), text)
    }

    /// The message `text` is refused with.
    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// What the file's words say, as the command line's would.
    fn args(text: &str) -> HostArgs {
        HostArgs::from_arg_matches(&parse(text).unwrap().matches).unwrap()
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
        assert_eq!(file.to, Some(2));
        let lines: Vec<(usize, usize)> =
            file.hosts.iter().map(|h| (h.line, h.chain_line)).collect();
        assert_eq!(lines, [(8, 9), (12, 13)]);
        assert_eq!(file.hosts[1].agent_dir.as_deref(), Some("/dev/shm/mfs"));
        let args = HostArgs::from_arg_matches(&file.matches).unwrap();
        assert_eq!(
            texts(&args.hosts),
            ["web*=ssh:deploy@%h,sudo:root", "db?=ssh:bastion,ssh:%h"]
        );
        assert_eq!(args.to.as_deref(), Some("ssh:%h"));
        assert_eq!(args.ssh_config.unwrap(), Path::new("/etc/team/fleet"));
        assert_eq!(
            args.password_file.unwrap(),
            ssh_config::home_dir().join("pw")
        );
        assert_eq!(args.verbose, 2);
    }

    #[test]
    fn lanes_are_a_number_from_one_to_twelve() {
        assert_eq!(args("lanes = 1\n").lanes, Some(1));
        assert_eq!(args("lanes = \"3\"\n").lanes, Some(3));
        assert_eq!(args("").lanes, None);
        assert_eq!(args("lanes = 12\n").lanes, Some(12));
        for bad in ["lanes = 0\n", "lanes = 13\n", "lanes = \"many\"\n"] {
            let e = error(bad);
            assert!(e.starts_with("/etc/team/config line 1: lanes"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = error("to = \"local\"\nbogus = 1\n");
        assert!(
            e.starts_with("/etc/team/config line 2: unknown field `bogus`, expected one of `to`"),
            "{e}"
        );
        let e = error("to = \n");
        assert!(e.starts_with("/etc/team/config line 1: "), "{e}");
        let e = error("[[host]]\npattern = \"x\"\n");
        assert!(e.contains("missing field `chain`"), "{e}");
        let e = error("[[host]]\npattern = \"x\"\nchian = \"local\"\n");
        assert!(
            e.starts_with("/etc/team/config line 3: unknown field `chian`"),
            "{e}"
        );
        let e = error("[[host]]\npattern = \" \"\nchain = \"local\"\n");
        assert!(
            e.starts_with("/etc/team/config line 2: empty pattern"),
            "{e}"
        );
        for loosening in ["remote-gateway-ports", "forward-agent-across-users"] {
            let e = error(&format!("{loosening} = true\n"));
            assert!(
                e.starts_with(&format!(
                    "/etc/team/config line 1: unknown field `{loosening}`"
                )),
                "{e}"
            );
        }
        let e = error("verbose = 9\n");
        assert!(
            e.starts_with("/etc/team/config line 1: verbose: 0 to 3"),
            "{e}"
        );
        let e = error("agent-dir = \"/a$b\"\n");
        assert!(e.starts_with("/etc/team/config line 1: agent-dir: "), "{e}");
        let e = error("\n[[host]]\npattern = \"x\"\nchain = \"local\"\nagent-dir = \"/a$b\"\n");
        assert!(e.starts_with("/etc/team/config line 5: agent-dir: "), "{e}");
        let e = error("quiet = 1\n");
        assert_eq!(e, "/etc/team/config line 1: quiet: expected true or false");
        let e = error("to = [\"local\"]\n");
        assert_eq!(e, "/etc/team/config line 1: to: expected a string");
        let e = error("agent = [\"no-equals\"]\n");
        assert!(e.starts_with("/etc/team/config line 1: agent: invalid value 'no-equals' for '--agent <PLATFORM=PATH>': expected PLATFORM=PATH"), "{e}");
        let e = error("verbose = 1\n\nquiet = true\n");
        assert!(e.starts_with("/etc/team/config line 3: quiet: "), "{e}");
        // A file names no other file.
        let e = error("config = \"other\"\n");
        assert!(
            e.starts_with("/etc/team/config line 1: unknown field `config`"),
            "{e}"
        );
    }

    #[test]
    fn no_file_is_no_arguments() {
        assert!(ConfigFile::load(Some(Path::new("none"))).unwrap().is_none());
        let e = ConfigFile::load(Some(Path::new("/nonexistent/config"))).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/config: "), "{e}");
    }

    /// A value for the flag `arg`, as a command-line word and as TOML.
    fn sample(arg: &Arg) -> (Vec<String>, String) {
        let long = arg.get_long().unwrap();
        let text = match arg.get_id().as_str() {
            "agents" => "Linux x86_64=/opt/agents/mitogen-fakessh",
            "hosts" => "web*=ssh:deploy@%h,sudo:root",
            "to" => "ssh:%h,sudo:root",
            "agent_dir" => "/opt/mfs",
            "lanes" => "3",
            _ => "/etc/team/somewhere",
        };
        match (arg.get_action(), arg.get_id().as_str()) {
            (_, "hosts") => (
                vec![format!("--{long}"), text.to_string()],
                "[[host]]\npattern = \"web*\"\nchain = \"ssh:deploy@%h,sudo:root\"\n".into(),
            ),
            (ArgAction::SetTrue, _) => (vec![format!("--{long}")], format!("{long} = true\n")),
            (ArgAction::Count, _) => (
                vec![format!("--{long}"), format!("--{long}")],
                format!("{long} = 2\n"),
            ),
            (ArgAction::Append, _) => (
                vec![format!("--{long}"), text.to_string()],
                format!("{long} = [{text:?}]\n"),
            ),
            _ => (
                vec![format!("--{long}"), text.to_string()],
                format!("{long} = {text:?}\n"),
            ),
        }
    }

    #[test]
    fn every_key_is_a_flag_and_every_flag_a_key() {
        let mut command = host_command();
        command.build();
        let keys = keys(&command);
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let long = arg.get_long().unwrap_or_default();
            if NOT_IN_FILE.contains(&id) {
                assert!(flag_of_key(&command, long).is_none(), "{long} is a key");
                continue;
            }
            assert!(keys.iter().any(|k| k == long), "--{long} has no key");
            // The key gives what the flag gives.
            let (words, toml) = sample(arg);
            let (flag, _) = super::parse_words(words.iter().map(OsString::from).collect()).unwrap();
            let key = args(&toml);
            assert_eq!(format!("{flag:?}"), format!("{key:?}"), "{toml}");
        }
        for key in &keys {
            let arg = flag_of_key(&command, key).unwrap();
            assert_eq!(arg.get_long(), Some(key.as_str()));
        }
        assert!(keys.iter().any(|k| k == HOST_TABLES));
    }
}
