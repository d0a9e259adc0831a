//! Watching a privilege hop's pty: answer the password prompt once,
//! recognise refusals, then relay what the agent writes to its stderr.

use std::sync::{Arc, Mutex};

use router::message::Secret;
use router::text::sanitize_line;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::progress::{Phase, Progress};
use super::prompt::{self, cut_line, is_password_prompt};
pub use super::verdict::{Refusal, Verdict};
use crate::fdstream::FdStream;
use crate::hop::lines::{Line, LineSplitter, Redactor};

/// Messages on the pty that end the attempt (lower case).
const REFUSALS: &[(&str, Refusal)] = &[
    ("you must have a tty", Refusal::NeedsTty),
    ("is not in the sudoers file", Refusal::NotInSudoers),
    ("is not allowed to execute", Refusal::NotAllowed),
    // sudo-rs: "Sorry, user U may not run C on H." / "I'm sorry U. I'm
    // afraid I can't do that" (not in sudoers).
    ("may not run", Refusal::NotAllowed),
    ("i'm afraid i can't do that", Refusal::NotInSudoers),
    ("a password is required", Refusal::PasswordDemanded),
    ("incorrect password", Refusal::IncorrectPassword),
    (
        "incorrect authentication attempts",
        Refusal::IncorrectPassword,
    ),
    ("authentication failure", Refusal::IncorrectPassword),
    ("sorry, try again", Refusal::IncorrectPassword),
    ("authentication failed", Refusal::IncorrectPassword),
    ("permission denied", Refusal::PermissionDenied),
    ("does not exist", Refusal::NoSuchUser),
    ("unknown user", Refusal::NoSuchUser),
    // sudo-rs: "user 'U' not found".
    ("' not found", Refusal::NoSuchUser),
    ("command not found", Refusal::NotInstalled),
    ("no such file or directory", Refusal::NotInstalled),
];

/// Everything the watcher needs.
pub struct Watch {
    pub name: String,
    pub master: FdStream,
    /// su's PAM conversation prompts on the tty but reads the answer from
    /// stdin, our socket: answer there.
    pub answer_on_stdin: Option<std::os::unix::net::UnixStream>,
    pub prompt: String,
    pub password: Option<Secret>,
    pub verdict: Arc<Mutex<Verdict>>,
    /// True once the agent runs: what arrives then is its stderr.
    pub booted: watch::Receiver<bool>,
    pub pid: Option<u32>,
    pub progress: Progress,
}

impl Watch {
    fn kill(&self) {
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn record(&self, refusal: Refusal) {
        let mut v = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        v.refusal.get_or_insert(refusal);
    }

    fn push_tail(&self, line: String) {
        let mut v = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        if v.tail.len() == 5 {
            v.tail.remove(0);
        }
        v.tail.push(line);
    }

    /// Look at complete lines for refusals (kept with other noise for the
    /// error message). Returns whether the attempt is over.
    fn judge_lines(&self, lines: Vec<String>, sent: bool) -> bool {
        let mut over = false;
        for line in lines {
            let line = line.trim().replace(&self.prompt, "");
            // Kept for our error messages: remote text, made safe to print.
            let line = cut_line(router::text::sanitize_line(line.as_bytes()));
            if line.is_empty() {
                continue;
            }
            let lower = line.to_ascii_lowercase();
            if let Some((_, refusal)) = REFUSALS.iter().find(|(needle, _)| lower.contains(needle)) {
                self.record(*refusal);
                over |= *refusal != Refusal::IncorrectPassword || sent;
            }
            self.push_tail(line);
        }
        over
    }

    /// Whether the line so far (`partial`, then the bytes the redactor
    /// holds back) is a password prompt (sudo's, sudo-rs's wrapped one, su's
    /// or doas's).
    fn is_prompt(&self, partial: &[u8], held: &[u8]) -> bool {
        let text = [partial, held].concat();
        is_password_prompt(&text, self.prompt.as_bytes())
    }

    /// Keep what follows the last complete line (`partial`: at most a
    /// line's bound), made safe to print, for a message should the program
    /// stall there.
    fn note_partial(&self, partial: &[u8]) {
        let line = partial.trim_ascii();
        // Its end, which is what a prompt is, within bounds.
        let start = line.len().saturating_sub(prompt::MAX_LINE);
        let partial = cut_line(sanitize_line(&line[start..]));
        let mut v = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        v.partial = partial;
    }

    /// The prompt just answered becomes a line of what was seen.
    fn prompt_answered(&self) {
        let mut v = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        let prompt = std::mem::take(&mut v.partial);
        drop(v);
        self.push_tail(prompt);
    }

    /// Answer the password prompt once, recognise refusals, then keep
    /// draining the pty (the agent's stderr) into our log for the agent's
    /// lifetime. The line being read is bounded ([`LineSplitter`]) and only
    /// the bytes each read brings are scanned, however much arrives
    /// without a newline.
    pub async fn run(mut self) {
        let mut lines = LineSplitter::new();
        // Never keep or print the password, should anything echo it.
        let mut redactor = self
            .password
            .as_ref()
            .filter(|p| !p.0.is_empty())
            .map(|p| Redactor::new(p.0.as_bytes(), b"<password>"));
        let mut sent = false;
        let mut buf = [0u8; 4096];
        loop {
            let n = match self.master.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                // EOF, or EIO once every holder of the slave is gone: judge
                // what is left as a last line.
                _ => {
                    if !*self.booted.borrow() {
                        let mut last = Vec::new();
                        if let Some(r) = redactor.as_mut() {
                            lines.feed(&r.flush(), |l| last.push(l.text()));
                        }
                        lines.finish(|l| last.push(l.text()));
                        self.judge_lines(last, sent);
                        self.note_partial(b"");
                    }
                    break;
                }
            };
            let redacted;
            let chunk = match redactor.as_mut() {
                Some(r) => {
                    redacted = r.pass(&buf[..n]);
                    &redacted[..]
                }
                None => &buf[..n],
            };
            if *self.booted.borrow() {
                lines.feed(chunk, |line| relay_agent_line(&self.name, line));
                continue;
            }
            let mut complete = Vec::new();
            lines.feed(chunk, |line| complete.push(line.text()));
            let held = redactor.as_ref().map_or(&[][..], |r| r.held());
            if self.is_prompt(lines.partial(), held) {
                self.note_partial(&[lines.partial(), held].concat());
                if sent {
                    self.record(Refusal::IncorrectPassword);
                    self.kill();
                    break;
                }
                let Some(pw) = &self.password else {
                    self.record(Refusal::PasswordMissing);
                    self.kill();
                    break;
                };
                debug!("{}: answering the password prompt", self.name);
                self.progress.advance(Phase::SendingPassword);
                let mut answer = zeroize::Zeroizing::new(pw.0.clone().into_bytes());
                answer.push(b'\n');
                let written = match &self.answer_on_stdin {
                    Some(stdin) => {
                        use std::io::Write;
                        (&*stdin).write_all(&answer).is_ok()
                    }
                    None => self.master.write_all(&answer).await.is_ok(),
                };
                if !written {
                    break;
                }
                self.progress.advance(Phase::AwaitingAnswer);
                sent = true;
                lines.clear();
                self.prompt_answered();
                continue;
            }
            if self.judge_lines(complete, sent) {
                self.kill();
            }
            self.note_partial(lines.partial());
        }
    }
}

/// The agent runs: complete lines on the pty are its stderr.
fn relay_agent_line(name: &str, line: Line<'_>) {
    // Remote text: escaped, so it cannot drive the operator's terminal.
    let bytes = line.bytes.trim_ascii_end();
    let line = match line.cut {
        0 => sanitize_line(bytes),
        cut => format!("[{cut} bytes cut] {}", sanitize_line(bytes)),
    };
    if line.starts_with("mitogen-fakessh") {
        crate::logging::stderr_line(&line);
    } else if !line.is_empty() {
        warn!("{name}: {line}");
    }
}
