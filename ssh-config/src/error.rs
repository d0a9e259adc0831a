//! Why an ssh configuration cannot be used. Messages follow OpenSSH's.

use std::path::PathBuf;

use super::matching::MatchError;
use super::tokens::TokenError;

/// Why an ssh configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read ssh config {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `{file} line {n}: ...`
    #[error("{at}: {problem}")]
    Line { at: Place, problem: LineProblem },
    /// OpenSSH words this one with a colon after the file name.
    #[error("{}: line {}: Bad configuration option: {key}", .at.file, .at.line)]
    BadOption { at: Place, key: String },
    #[error("{at}: {keyword}: {source}")]
    Expansion {
        at: Place,
        keyword: &'static str,
        source: TokenError,
    },
    /// `RefuseConnection` applied: OpenSSH's words (exit status 255).
    #[error("{at}: RefuseConnection: {reason}")]
    Refused { at: Place, reason: String },
    #[error("Match exec: {0}")]
    MatchExec(TokenError),
    #[error("ssh -F {}: no such file", .0.display())]
    NoSuchFile(PathBuf),
    /// `~/.ssh/config` or an included file another account could have
    /// written: OpenSSH's words, and it stops there too.
    #[error("Bad owner or permissions on {}", .0.display())]
    BadOwnerOrPermissions(PathBuf),
}

/// Where a line stands: a file (or `command-line`, line 0) and its number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: std::sync::Arc<str>,
    pub line: usize,
}

impl Place {
    /// `-o` options: OpenSSH calls them line 0 of `command-line`.
    pub fn command_line() -> Place {
        Place {
            file: "command-line".into(),
            line: 0,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

/// What is wrong with one line.
#[derive(Debug, thiserror::Error)]
pub enum LineProblem {
    #[error(transparent)]
    Match(#[from] MatchError),
    #[error("invalid quotes")]
    InvalidQuotes,
    #[error("no argument after keyword \"{0}\"")]
    NoArgument(String),
    #[error("keyword {0} extra arguments at end of line")]
    ExtraArguments(String),
    #[error("{0} directive not supported as a command-line option")]
    NotAnOption(&'static str),
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
    #[error("Bad port '{0}'.")]
    BadPort(String),
    #[error("unsupported option \"{value}\" for {keyword}")]
    BadValue {
        keyword: &'static str,
        value: String,
    },
    /// A crypto list or RequiredRSASize OpenSSH (or our client) refuses.
    #[error(transparent)]
    Algorithms(#[from] crate::algorithms::BadList),
}
