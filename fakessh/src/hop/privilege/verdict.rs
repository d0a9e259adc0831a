//! What a privilege hop's pty watcher concluded: the refusal it saw, and
//! the last things the program printed, for messages (shared by the watcher
//! and the waits that time out).

/// Why sudo, su or doas would not let us through, as it said on the pty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sudo refused: it demands a tty (requiretty) and did not get one")]
    NeedsTty,
    #[error("not allowed to use sudo (not in the sudoers file)")]
    NotInSudoers,
    #[error("sudo does not allow this user to run commands as the target user")]
    NotAllowed,
    #[error("a password is required")]
    PasswordDemanded,
    #[error("a password is required; give --password-file or run from a terminal")]
    PasswordMissing,
    #[error("incorrect password")]
    IncorrectPassword,
    #[error("permission denied")]
    PermissionDenied,
    #[error("the target user does not exist")]
    NoSuchUser,
    #[error("the program is not installed")]
    NotInstalled,
}

impl Refusal {
    /// The hop asked for a password and none was given.
    pub fn password_required(self) -> bool {
        self == Refusal::PasswordMissing
    }
}

/// What the watcher concluded before the agent came up.
#[derive(Default)]
pub struct Verdict {
    pub refusal: Option<Refusal>,
    /// The last lines that were neither prompt nor agent output
    /// (sanitized, each at most [`super::prompt::MAX_LINE`] bytes).
    pub tail: Vec<String>,
    /// What follows the last complete line: a prompt not answered, say
    /// (sanitized, cut like a line).
    pub partial: String,
}

impl Verdict {
    /// The last things the program printed, for a message: the last lines
    /// and what follows them.
    pub fn last_seen(&self) -> String {
        let mut seen: Vec<&str> = self
            .tail
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        if !self.partial.is_empty() {
            seen.push(&self.partial);
        }
        seen.join(" | ")
    }
}
