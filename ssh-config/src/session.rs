//! What an ssh command line asks of its session, as `Match command` and
//! `Match sessiontype` see it.

/// A session type set on the command line (`-s`, `-N`, `-W`), which wins
/// over a `SessionType` in the files, as in OpenSSH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    /// `-s`: the command names a subsystem.
    Subsystem,
    /// `-N` or `-W`: no session, the connection (or a forward) only.
    NoSession,
}

/// The session a destination is resolved for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAsked {
    /// The remote command's words joined by spaces, as ssh joins them
    /// (the subsystem's name for `-s`); empty for none. `RemoteCommand`
    /// does not count, as in OpenSSH.
    pub command: String,
    pub session_type: Option<SessionType>,
}

impl SessionAsked {
    /// A connection that carries no session of its own (a `ProxyJump`
    /// host's, which OpenSSH reaches with `ssh -W`): `sessiontype none`.
    pub fn transport() -> SessionAsked {
        SessionAsked {
            command: String::new(),
            session_type: Some(SessionType::NoSession),
        }
    }

    /// What `Match sessiontype` tests: the command line's type, else the
    /// `SessionType` obtained so far (`subsystem` or `none`), else `exec`
    /// with a command and `shell` without.
    pub(crate) fn type_name(&self, from_config: Option<&str>) -> &'static str {
        let configured = from_config.map(str::to_ascii_lowercase);
        match (self.session_type, configured.as_deref()) {
            (Some(SessionType::Subsystem), _) | (None, Some("subsystem")) => "subsystem",
            (Some(SessionType::NoSession), _) | (None, Some("none")) => "none",
            _ if !self.command.is_empty() => "exec",
            _ => "shell",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_types_as_openssh_names_them() {
        let shell = SessionAsked::default();
        assert_eq!(shell.type_name(None), "shell");
        assert_eq!(shell.type_name(Some("default")), "shell");
        assert_eq!(shell.type_name(Some("None")), "none");
        let exec = SessionAsked {
            command: "ls -l".into(),
            session_type: None,
        };
        assert_eq!(exec.type_name(None), "exec");
        assert_eq!(exec.type_name(Some("subsystem")), "subsystem");
        let sftp = SessionAsked {
            command: "sftp".into(),
            session_type: Some(SessionType::Subsystem),
        };
        assert_eq!(sftp.type_name(Some("none")), "subsystem");
        assert_eq!(SessionAsked::transport().type_name(None), "none");
    }
}
