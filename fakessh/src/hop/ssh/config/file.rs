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

use super::error::{ConfigError, LineProblem};
use super::matching::Condition;
use super::paths::home_dir;

/// OpenSSH's limit on nested `Include` (READCONF_MAX_DEPTH).
const MAX_INCLUDE_DEPTH: usize = 16;

/// One keyword line.
#[derive(Clone, Debug)]
pub struct Line {
    pub when: Vec<Arc<Condition>>,
    /// Lower-cased keyword.
    pub key: String,
    pub value: String,
}

/// Where an `Include` with a relative path looks: `~/.ssh` for the user's
/// file (and `ssh -F`), `/etc/ssh` for the system's.
#[derive(Clone, Debug)]
pub struct IncludeBase(pub PathBuf);

/// Read `path` and everything it includes. A missing top-level file is an
/// empty configuration, like OpenSSH's.
pub fn read(path: &Path, base: &IncludeBase) -> Result<Vec<Line>, ConfigError> {
    let mut lines = Vec::new();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &path.display().to_string(), base, &[], 0, &mut lines)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(lines)
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
    let mut block: Option<Arc<Condition>> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = |problem: LineProblem| ConfigError::Line {
            at: format!("{origin} line {}", n + 1),
            problem,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_keyword(line);
        let key = key.to_ascii_lowercase();
        let when = || {
            let mut when = outer.to_vec();
            when.extend(block.clone());
            when
        };
        match key.as_str() {
            "host" => {
                let patterns = value.split_whitespace().map(|p| unquote(p).to_string());
                block = Some(Arc::new(Condition::Host(patterns.collect())));
            }
            "match" => {
                let condition = Condition::parse_match(value).map_err(|e| at(e.into()))?;
                block = Some(Arc::new(condition));
            }
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(at(LineProblem::IncludeTooDeep));
                }
                for file in include_paths(value, base).map_err(at)? {
                    let text = std::fs::read_to_string(&file).map_err(|source| {
                        at(LineProblem::IncludeRead {
                            path: file.clone(),
                            source,
                        })
                    })?;
                    let name = file.display().to_string();
                    parse(&text, &name, base, &when(), depth + 1, out)?;
                }
            }
            _ => out.push(Line {
                when: when(),
                key,
                value: unquote(value).to_string(),
            }),
        }
    }
    Ok(())
}

/// The files an `Include` names: `~` expanded, relative paths under `base`,
/// wildcards expanded in sorted order; a pattern that matches nothing is
/// skipped, as in OpenSSH.
fn include_paths(value: &str, base: &IncludeBase) -> Result<Vec<PathBuf>, LineProblem> {
    let mut files = Vec::new();
    for word in value.split_whitespace().map(unquote) {
        let path = if let Some(rest) = word.strip_prefix("~/") {
            home_dir().join(rest)
        } else if Path::new(word).is_absolute() {
            PathBuf::from(word)
        } else {
            base.0.join(word)
        };
        let pattern = path.to_string_lossy().into_owned();
        let matches = glob::glob(&pattern).map_err(|source| LineProblem::IncludePattern {
            word: word.to_string(),
            source,
        })?;
        let mut found: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
        found.sort();
        files.extend(found.into_iter().filter(|p| !p.is_dir()));
    }
    Ok(files)
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`.
pub fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (&line[..end], rest)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
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
        let lines = read(&d.join("top"), &IncludeBase(d.to_path_buf())).unwrap();
        let keys: Vec<_> = lines
            .iter()
            .map(|l| (l.value.as_str(), l.when.len()))
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
        let err = read(&d.join("loop"), &IncludeBase(d.to_path_buf())).unwrap_err();
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
}
