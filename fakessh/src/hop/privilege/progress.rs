//! Where a privilege hop is in its start-up, and a deadline on each step.
//!
//! sudo, su and doas (and whatever else answers to those names on a
//! remote) either start our shell at once, or prompt for a password, get
//! it, and then start the shell or refuse. Each of those waits ends within
//! its own limit with a message naming what we waited for and the last
//! thing the program printed ([`Stall`]), so no program, however unknown
//! its prompt, leaves a hop waiting in silence.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

use super::verdict::Verdict;

/// How long the program may take to print a password prompt or start our
/// shell (a slow directory lookup before the prompt fits in this).
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing the password may take (the pty takes it at once unless
/// the program stopped reading).
pub const PASSWORD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the program may take to accept the password (start our shell)
/// or refuse it; PAM's delay after a wrong password is a few seconds.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The steps of a privilege hop's start-up, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Started: a password prompt or our shell's first output is due.
    AwaitingPrompt,
    /// The prompt was seen; the password is being written.
    SendingPassword,
    /// The password was written; the shell or a refusal is due.
    AwaitingAnswer,
    /// Our shell wrote its first byte: the bootstrap's own limits apply.
    ShellStarted,
}

impl Phase {
    /// How long this step may last, and what did not happen if it lasts
    /// longer; `None` once the shell runs.
    fn limit(self, program: &str) -> Option<(Duration, String)> {
        match self {
            Phase::AwaitingPrompt => Some((
                PROMPT_TIMEOUT,
                format!("{program} neither asked for a password nor started the shell"),
            )),
            Phase::SendingPassword => Some((
                PASSWORD_TIMEOUT,
                format!("{program} asked for a password but did not read it"),
            )),
            Phase::AwaitingAnswer => Some((
                ANSWER_TIMEOUT,
                format!("{program} neither accepted nor refused the password"),
            )),
            Phase::ShellStarted => None,
        }
    }
}

/// The current [`Phase`], moved forward by the pty watcher and by the
/// first byte from the shell; never backwards.
#[derive(Clone)]
pub struct Progress(Arc<watch::Sender<Phase>>);

impl Default for Progress {
    fn default() -> Progress {
        Progress(Arc::new(watch::Sender::new(Phase::AwaitingPrompt)))
    }
}

impl Progress {
    pub fn advance(&self, to: Phase) {
        self.0.send_if_modified(|now| {
            let later = to > *now;
            if later {
                *now = to;
            }
            later
        });
    }

    /// Resolves when a step outlasts its limit, with why; never once the
    /// shell runs.
    pub async fn stalled(&self, program: &str, verdict: &Mutex<Verdict>) -> Stall {
        let mut phase = self.0.subscribe();
        loop {
            let now = *phase.borrow_and_update();
            let Some((limit, what)) = now.limit(program) else {
                return std::future::pending().await;
            };
            if let Err(_elapsed) = tokio::time::timeout(limit, phase.changed()).await {
                let last_seen = verdict
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_seen();
                return Stall {
                    what,
                    secs: limit.as_secs(),
                    last_seen,
                };
            }
        }
    }
}

/// A step of a privilege hop that outlasted its limit.
#[derive(Debug, thiserror::Error)]
#[error("{what} within {secs}s; last seen on its terminal: {}", quoted(.last_seen))]
pub struct Stall {
    pub what: String,
    pub secs: u64,
    /// Already sanitized (remote text).
    pub last_seen: String,
}

fn quoted(text: &str) -> String {
    match text.is_empty() {
        true => "nothing".to_string(),
        false => format!("\"{text}\""),
    }
}

/// A reader that marks [`Phase::ShellStarted`] on the first byte it reads:
/// the shell's output comes only once the program let us through.
pub struct FirstByte<'a, R> {
    pub inner: &'a mut R,
    pub progress: Option<Progress>,
}

impl<R: AsyncRead + Unpin> AsyncRead for FirstByte<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && let Some(progress) = self.progress.take()
        {
            progress.advance(Phase::ShellStarted);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let progress = Progress::default();
        progress.advance(Phase::AwaitingAnswer);
        progress.advance(Phase::SendingPassword);
        assert_eq!(*progress.0.borrow(), Phase::AwaitingAnswer);
        progress.advance(Phase::ShellStarted);
        assert_eq!(*progress.0.borrow(), Phase::ShellStarted);
    }

    #[test]
    fn a_stall_names_what_it_waited_for_and_what_it_saw() {
        let stall = Stall {
            what: "sudo neither asked for a password nor started the shell".into(),
            secs: 30,
            last_seen: "PIN for token 7 >".into(),
        };
        assert_eq!(
            stall.to_string(),
            "sudo neither asked for a password nor started the shell within 30s; \
             last seen on its terminal: \"PIN for token 7 >\""
        );
        let silent = Stall {
            last_seen: String::new(),
            ..stall
        };
        assert!(
            silent
                .to_string()
                .ends_with("last seen on its terminal: nothing")
        );
    }
}
