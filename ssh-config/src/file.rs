//! Reading ssh_config files into lines tagged with the conditions they are
//! under, following `Include` the way OpenSSH does.
//!
//! A line applies when every condition in its `when` holds: the `Host` or
//! `Match` block it sits in, and, for a line in an included file, the block
//! the `Include` sat in (OpenSSH's conditional inclusion). Conditions are
//! evaluated later, per destination, in file order, because `Match host`
//! depends on the `HostName` set by the lines before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfigError, LineProblem, Place};
use super::keywords::{self, Args, Effect, Keyword};
use super::matching::Condition;
use super::paths::home_dir;
use super::split;

/// OpenSSH's limit on nested `Include` (READCONF_MAX_DEPTH).
const MAX_INCLUDE_DEPTH: usize = 16;

/// One keyword line.
#[derive(Clone, Debug)]
pub struct Line {
    pub when: Vec<Arc<Condition>>,
    /// Lower-cased keyword (an alias's keyword, for an alias).
    pub key: String,
    /// `None` for a keyword OpenSSH does not know (an error where it is
    /// reached, unless `IgnoreUnknown` names it).
    pub known: Option<&'static Keyword>,
    /// Its arguments; for a command keyword, the rest of the line as one.
    pub args: Vec<String>,
    pub at: Place,
}

impl Line {
    /// A line from `text` (keyword and arguments, as in a file or `-o`),
    /// checked as OpenSSH checks every line, active or not.
    pub fn parse(
        text: &str,
        at: Place,
        when: Vec<Arc<Condition>>,
    ) -> Result<Option<Line>, ConfigError> {
        let Some((key, rest)) = split::keyword(text) else {
            return Ok(None);
        };
        let problem = |problem| ConfigError::Line {
            at: at.clone(),
            problem,
        };
        let lower = key.to_ascii_lowercase();
        if rest.is_empty() {
            return Err(problem(LineProblem::NoArgument(lower)));
        }
        let known = keywords::lookup(&lower);
        let args = match known.map(|k| k.args) {
            Some(Args::Rest) => vec![rest.to_string()],
            _ => split::words(rest).map_err(|_| problem(LineProblem::InvalidQuotes))?,
        };
        if args.is_empty() {
            return Err(problem(LineProblem::NoArgument(lower)));
        }
        if known.is_some_and(|k| k.args == Args::One) && args.len() > 1 {
            return Err(problem(LineProblem::ExtraArguments(lower)));
        }
        if let Some(bad) = crate::algorithms::check_line(&lower, &args[0]) {
            return Err(problem(LineProblem::Algorithms(bad)));
        }
        if let Some(k) = known.filter(|k| k.effect == Effect::Unsupported) {
            tracing::warn!(
                "{at}: Unsupported option \"{}\"",
                k.name.to_ascii_lowercase()
            );
        }
        // An alias obtains its keyword's value (`KeepAlive` is `TCPKeepAlive`).
        let key = known.map_or(lower, |k| k.name.to_ascii_lowercase());
        Ok(Some(Line {
            when,
            key,
            known,
            args,
            at,
        }))
    }
}

/// Where an `Include` with a relative path looks: `~/.ssh` for the user's
/// file (and `ssh -F`), `/etc/ssh` for the system's.
#[derive(Clone, Debug)]
pub struct IncludeBase(pub PathBuf);

/// Whether a file's owner and mode are checked before it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// `~/.ssh/config` and every included file: refused when another
    /// account could have written it (OpenSSH's `SSHCONF_CHECKPERM`).
    Checked,
    /// `ssh -F FILE` and `/etc/ssh/ssh_config`: used as they are, as
    /// OpenSSH uses them.
    AsGiven,
}

/// Read `path` and everything it includes. A missing top-level file is an
/// empty configuration, like OpenSSH's.
pub fn read(path: &Path, base: &IncludeBase, trust: Trust) -> Result<Vec<Line>, ConfigError> {
    let mut lines = Vec::new();
    match read_file(path, trust) {
        Ok(text) => parse(&text, &path.display().to_string(), base, &[], 0, &mut lines)?,
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(FileError::Io(source)) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(FileError::Unsafe) => return Err(ConfigError::BadOwnerOrPermissions(path.into())),
    }
    Ok(lines)
}

/// Why a file was not read.
enum FileError {
    Io(std::io::Error),
    /// Another account could have written it.
    Unsafe,
}

/// The text of `path`; with [`Trust::Checked`], only when the file is
/// owned by root or by us and nobody else may write it, checked on the
/// open file (OpenSSH's test in readconf.c).
fn read_file(path: &Path, trust: Trust) -> Result<String, FileError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path).map_err(FileError::Io)?;
    if trust == Trust::Checked {
        let meta = file.metadata().map_err(FileError::Io)?;
        let me = nix::unistd::getuid().as_raw();
        if (meta.uid() != 0 && meta.uid() != me) || meta.mode() & 0o022 != 0 {
            return Err(FileError::Unsafe);
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(FileError::Io)?;
    Ok(text)
}

/// Parse `text` (named `origin` in errors) under the conditions `outer`.
pub fn parse(
    text: &str,
    origin: &str,
    base: &IncludeBase,
    outer: &[Arc<Condition>],
    depth: usize,
    out: &mut Vec<Line>,
) -> Result<(), ConfigError> {
    let file: Arc<str> = origin.into();
    let mut block: Option<Arc<Condition>> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = Place {
            file: file.clone(),
            line: n + 1,
        };
        let mut when = outer.to_vec();
        when.extend(block.clone());
        let Some(line) = Line::parse(raw, at.clone(), when.clone())? else {
            continue;
        };
        let problem = |problem| ConfigError::Line {
            at: at.clone(),
            problem,
        };
        match line.key.as_str() {
            "host" => block = Some(Arc::new(Condition::Host(line.args))),
            "match" => {
                let condition =
                    Condition::parse_match(&line.args).map_err(|e| problem(e.into()))?;
                block = Some(Arc::new(condition));
            }
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(problem(LineProblem::IncludeTooDeep));
                }
                for file in include_paths(&line.args, base).map_err(problem)? {
                    // Included files are always checked, whoever includes them.
                    let text = read_file(&file, Trust::Checked).map_err(|e| match e {
                        FileError::Io(source) => problem(LineProblem::IncludeRead {
                            path: file.clone(),
                            source,
                        }),
                        FileError::Unsafe => ConfigError::BadOwnerOrPermissions(file.clone()),
                    })?;
                    let name = file.display().to_string();
                    parse(&text, &name, base, &when, depth + 1, out)?;
                }
            }
            _ => out.push(line),
        }
    }
    Ok(())
}

/// The files an `Include` names: `~` expanded, relative paths under `base`,
/// wildcards expanded in sorted order; a pattern that matches nothing is
/// skipped, as in OpenSSH.
fn include_paths(words: &[String], base: &IncludeBase) -> Result<Vec<PathBuf>, LineProblem> {
    let mut files = Vec::new();
    for word in words {
        let path = if let Some(rest) = word.strip_prefix("~/") {
            home_dir().join(rest)
        } else if Path::new(word).is_absolute() {
            PathBuf::from(word)
        } else {
            base.0.join(word)
        };
        let pattern = path.to_string_lossy().into_owned();
        let matches = glob::glob(&pattern).map_err(|source| LineProblem::IncludePattern {
            word: word.clone(),
            source,
        })?;
        let mut found: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
        found.sort();
        files.extend(found.into_iter().filter(|p| !p.is_dir()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_conditional_relative_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(d.join("conf.d/20-b"), "User b\nHost inner\nPort 2\n").unwrap();
        std::fs::write(d.join("conf.d/10-a"), "User a\n").unwrap();
        std::fs::write(
            d.join("top"),
            "Host outer\nInclude conf.d/* missing*\nPort 1\n",
        )
        .unwrap();
        let lines = read(
            &d.join("top"),
            &IncludeBase(d.to_path_buf()),
            Trust::AsGiven,
        )
        .unwrap();
        let keys: Vec<_> = lines
            .iter()
            .map(|l| (l.args[0].as_str(), l.when.len()))
            .collect();
        // a and b under `Host outer`; `Port 2` also under `Host inner`; after
        // the Include, `Port 1` is back under `Host outer` alone.
        assert_eq!(keys, [("a", 1), ("b", 1), ("2", 2), ("1", 1)]);
    }

    #[test]
    fn include_loops_and_unreadable_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("loop"),
            format!("Include {}\n", d.join("loop").display()),
        )
        .unwrap();
        let err = read(
            &d.join("loop"),
            &IncludeBase(d.to_path_buf()),
            Trust::AsGiven,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Line {
                    problem: LineProblem::IncludeTooDeep,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(
            "Match nonsense x\n",
            "cfg",
            &IncludeBase(d.to_path_buf()),
            &[],
            0,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cfg line 1: unsupported Match attribute \"nonsense\""
        );
    }

    fn one(text: &str) -> Result<Option<Line>, ConfigError> {
        Line::parse(
            text,
            Place {
                file: "cfg".into(),
                line: 3,
            },
            Vec::new(),
        )
    }

    /// The message `text` is refused with.
    fn refused(text: &str) -> String {
        one(text).unwrap_err().to_string()
    }

    #[test]
    fn lines_are_split_and_checked_as_openssh_does() {
        let port = one("Port 1 # comment").unwrap().unwrap();
        assert_eq!(
            (port.key.as_str(), port.args.as_slice()),
            ("port", &["1".to_string()][..])
        );
        assert_eq!(one("User 'ann'").unwrap().unwrap().args, ["ann"]);
        assert_eq!(
            one("ProxyCommand nc %h %p # not a comment")
                .unwrap()
                .unwrap()
                .args,
            ["nc %h %p # not a comment"]
        );
        assert_eq!(
            one("SendEnv LANG LC_*").unwrap().unwrap().args,
            ["LANG", "LC_*"]
        );
        assert!(one("# comment").unwrap().is_none());
        assert!(one("Bogus 1").unwrap().unwrap().known.is_none());
        assert_eq!(
            refused("Port 1 2"),
            "cfg line 3: keyword port extra arguments at end of line"
        );
        assert_eq!(refused("User \"ab"), "cfg line 3: invalid quotes");
        assert_eq!(
            refused("User"),
            "cfg line 3: no argument after keyword \"user\""
        );
    }
}
