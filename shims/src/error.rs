//! What can go wrong in the shim before or around a session.

use crate::argv::USAGE;
use crate::env;

/// A failure of the shim itself; the session (if any) exits 255.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(
        "not running under mitogen-fakessh ({} is unset); run your command as: mitogen-fakessh [--to CHAIN] -- COMMAND",
        env::CONTROL_FD
    )]
    NotUnderHost,
    #[error("MITOGEN_FAKESSH_FD={0:?} is not an fd number")]
    BadFdNumber(String),
    #[error(transparent)]
    Inherited(#[from] crate::sys::InheritedFdError),
    #[error("{inherited}, and the host's socket {path} is not reachable either: {source}")]
    Unreachable {
        inherited: Box<ShimError>,
        path: String,
        source: nix::Error,
    },
    #[error("{0} (the mitogen-fakessh host's socket, from {var})", var = env::CONTROL_PATH)]
    Distrusted(crate::trust::ReachError),
    #[error("the mitogen-fakessh host at {path} {why}")]
    Fallback { path: String, why: WelcomeError },
    #[error("socketpair: {0}")]
    SocketPair(nix::Error),
    #[error("cannot reach the mitogen-fakessh host over {via}: {source} (did the host exit?)")]
    Handover { via: String, source: nix::Error },
    #[error("dup: {0}")]
    Dup(std::io::Error),
    #[error("sending the session request: {0}")]
    Request(std::io::Error),
    #[error("ssh: -s requires a subsystem name\n{USAGE}")]
    NoSubsystem,
    #[error("Can't open user config file {0}: No such file or directory")]
    NoConfigFile(String),
    #[error(transparent)]
    Config(#[from] ssh_config::ConfigError),
}

/// How the host answered (or did not) on its fallback socket.
#[derive(Debug, thiserror::Error)]
pub enum WelcomeError {
    #[error("did not answer within 30 s")]
    Timeout,
    #[error("could not be waited for: {0}")]
    Poll(nix::Error),
    #[error("closed the connection ({0})")]
    Closed(nix::Error),
    #[error("refused this session: {0}")]
    Refused(String),
    #[error(transparent)]
    NotAGreeting(#[from] proto::control::ControlError),
}
