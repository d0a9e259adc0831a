//! The account an agent runs as, and the environment sshd would give a
//! command for it.

use nix::unistd::{User, geteuid};

/// Who we are: from the passwd database, not from inherited variables (after
/// sudo, `$HOME` may still name the previous user).
#[derive(Clone, Debug)]
pub struct Login {
    pub name: String,
    pub home: std::path::PathBuf,
    pub shell: std::path::PathBuf,
    pub uid: u32,
}

/// Who we are cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot read the passwd entry of uid {uid}: {source}")]
    Passwd { uid: u32, source: nix::Error },
    #[error("uid {0} has no passwd entry")]
    NoEntry(u32),
}

impl Login {
    pub fn current() -> Result<Login, LoginError> {
        let uid = geteuid();
        let user = User::from_uid(uid)
            .map_err(|source| LoginError::Passwd {
                uid: uid.as_raw(),
                source,
            })?
            .ok_or(LoginError::NoEntry(uid.as_raw()))?;
        let shell = if refuses_logins(&user.shell) {
            "/bin/sh".into()
        } else {
            user.shell
        };
        Ok(Login {
            name: user.name,
            home: user.dir,
            shell,
            uid: uid.as_raw(),
        })
    }

    /// sshd's base environment for a session.
    pub fn base_env(&self) -> Vec<(String, String)> {
        let path = if self.uid == 0 {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        } else {
            "/usr/local/bin:/usr/bin:/bin:/usr/games"
        };
        vec![
            ("USER".into(), self.name.clone()),
            ("LOGNAME".into(), self.name.clone()),
            ("HOME".into(), self.home.to_string_lossy().into_owned()),
            ("SHELL".into(), self.shell.to_string_lossy().into_owned()),
            ("PATH".into(), path.into()),
        ]
    }

    /// The shell's basename (argv\[0\] for commands, `-name` for login shells).
    pub fn shell_name(&self) -> String {
        self.shell
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sh".into())
    }
}

/// A login shell that only refuses (`nologin`, `false`), or none at all.
/// sshd never lets such an account in, so an agent running as one came
/// through sudo, su or doas, and its commands run as `sudo -u` runs them:
/// through `/bin/sh -c`.
fn refuses_logins(shell: &std::path::Path) -> bool {
    let name = shell.file_name().map(|n| n.to_string_lossy().into_owned());
    shell.as_os_str().is_empty()
        || matches!(name.as_deref(), Some("nologin" | "false"))
        || !shell.exists()
}

/// Requested variables we pass on, like sshd's AcceptEnv: GIT_PROTOCOL (git
/// protocol v2), the locale, and TERM when there is a terminal.
pub fn accept_env(name: &str, tty: bool) -> bool {
    name == "GIT_PROTOCOL" || name == "LANG" || name.starts_with("LC_") || (tty && name == "TERM")
}

/// Where the sftp subsystem lives on the usual systems.
const SFTP_SERVER_PATHS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/sftp-server",
];

/// Resolve a subsystem like sshd's `Subsystem` line: sshd_config first, then
/// the usual paths. Returns the command to run through the shell.
pub fn subsystem_command(name: &str) -> Option<String> {
    if let Ok(config) = std::fs::read_to_string("/etc/ssh/sshd_config") {
        for line in config.lines() {
            let mut words = line.split_whitespace();
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("subsystem"))
                && words.next() == Some(name)
            {
                let cmd: Vec<&str> = words.collect();
                let program = cmd.first().copied().unwrap_or("");
                if program == "internal-sftp" {
                    break;
                }
                if std::path::Path::new(program).exists() {
                    return Some(cmd.join(" "));
                }
            }
        }
    }
    if name == "sftp" {
        return SFTP_SERVER_PATHS
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_get_sh() {
        assert!(refuses_logins("/usr/sbin/nologin".as_ref()));
        assert!(refuses_logins("/bin/false".as_ref()));
        assert!(refuses_logins("".as_ref()));
        assert!(refuses_logins("/nonexistent/shell".as_ref()));
        assert!(!refuses_logins("/bin/sh".as_ref()));
    }
}
