//! Why an ssh configuration cannot be used.

use std::path::PathBuf;

use super::matching::MatchError;

/// Why an ssh configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read ssh config {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{at}: {problem}")]
    Line { at: String, problem: LineProblem },
    #[error("ssh config: bad {keyword} {value:?}")]
    BadValue {
        keyword: &'static str,
        value: String,
    },
    #[error("ssh config: bad Port {value:?} for host {host}")]
    BadPort { value: String, host: String },
    #[error("ssh -F {}: no such file", .0.display())]
    NoSuchFile(PathBuf),
}

/// What is wrong with one line.
#[derive(Debug, thiserror::Error)]
pub enum LineProblem {
    #[error(transparent)]
    Match(#[from] MatchError),
    #[error("Include nested too deeply")]
    IncludeTooDeep,
    #[error("Include {word}: {source}")]
    IncludePattern {
        word: String,
        source: glob::PatternError,
    },
    #[error("cannot read included {path}: {source}")]
    IncludeRead {
        path: PathBuf,
        source: std::io::Error,
    },
}
