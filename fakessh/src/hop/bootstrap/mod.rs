//! Getting our agent running on the far side of an ssh channel or a
//! privilege change, with nothing installed there beforehand: the
//! [`script`] that runs there, and the host's side of it, which answers its
//! requests for the agent and waits for the exec marker.
//!
//! Every read has a timeout with a message, and the end of the channel
//! (the remote shell exited: EOF, exit status, close) ends the bootstrap at
//! once, also in the middle of an upload the remote stopped reading.

pub mod script;

use std::sync::Arc;
use std::time::Duration;

use router::text::sanitize_line;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::{debug, info};

use super::agents::{AgentError, Agents, Image};
use super::upload;
pub use script::{AgentDirError, Placement, agent_dir, command, sh_script};

/// Why the agent could not be started on the far side.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The script said why (`MFS-ERROR ...`).
    #[error("{0}")]
    Remote(String),
    #[error("no agent image for the remote platform {platform:?} (uname -sm): {why}")]
    NoAgent { platform: String, why: String },
    #[error("the bootstrap did not answer within {}s", MARKER_TIMEOUT.as_secs())]
    Timeout,
    #[error("bootstrap failed: {0}")]
    Read(std::io::Error),
    #[error("the remote shell exited during the bootstrap")]
    ShellExited,
    /// The script spoke again before it had read the whole upload: its
    /// upload pipeline failed, and it will never read the rest.
    #[error(
        "the remote stopped reading the agent upload and answered {0:?} (a failing head, gzip, tee or cat there?)"
    )]
    UploadUnread(String),
    #[error("the remote shell prints too much noise on stdout (check its rc files)")]
    Noise,
    #[error("unexpected bootstrap answer {0:?}")]
    Unexpected(String),
    #[error(transparent)]
    Upload(#[from] upload::UploadError),
    #[error("cannot read the agent images: {0}")]
    Join(std::io::Error),
    #[error(transparent)]
    AgentDir(#[from] AgentDirError),
}

/// How long each step of the script may take to answer.
const MARKER_TIMEOUT: Duration = Duration::from_secs(60);

/// One line the script printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `MFS-CACHED DIR`: the agent found there is good.
    Cached(String),
    /// `MFS-STORED DIR`: the agent uploaded was stored there and runs.
    Stored(String),
    /// `MFS-UPLOAD gz|raw PLATFORM`: send that platform's agent.
    Upload { gzip: bool, platform: String },
    /// `MFS-NOAGENT PLATFORM`: the host has no agent for it.
    NoAgent(String),
    /// `MFS-EXEC`: the agent starts; frames follow this line.
    Exec,
    /// `MFS-ERROR why`.
    Error(String),
    /// Another `MFS-` line: a script of another version.
    Unknown(String),
    /// Anything else: noise from the remote's rc files.
    Noise,
}

impl Reply {
    /// What one line (without its newline) says.
    pub fn parse(line: &[u8]) -> Reply {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        // The text a line carries is escaped (`\033` for ESC...): anything
        // on the remote, an rc file included, can print such a line, and it
        // ends up in our messages.
        let text = |s: &str| router::text::sanitize_line(s.as_bytes());
        match word {
            "MFS-EXEC" if rest.is_empty() => Reply::Exec,
            "MFS-CACHED" => Reply::Cached(text(rest)),
            "MFS-STORED" => Reply::Stored(text(rest)),
            "MFS-NOAGENT" => Reply::NoAgent(text(rest)),
            "MFS-ERROR" => Reply::Error(text(rest)),
            "MFS-UPLOAD" => match rest.split_once(' ') {
                Some(("gz", platform)) => Reply::Upload {
                    gzip: true,
                    platform: platform.to_string(),
                },
                Some(("raw", platform)) => Reply::Upload {
                    gzip: false,
                    platform: platform.to_string(),
                },
                _ => Reply::Unknown(text(line)),
            },
            _ if line.starts_with("MFS-") => Reply::Unknown(text(line)),
            _ => Reply::Noise,
        }
    }
}

/// What the bootstrap did.
pub struct Bootstrapped {
    pub uploaded: bool,
}

/// Drive the script: answer upload requests, wait for the exec marker.
/// After `Ok`, the next bytes on the channel are the agent's frames. An
/// upload shows its progress on a terminal, unless `quiet` (`-q`); it
/// waits for one of `upload_slots`, if given (a host starting many hops).
///
/// While an upload is being sent, the channel is read too: the remote
/// shell exiting (or answering early) ends the upload at once, instead of
/// leaving the host waiting for room in a channel nobody reads any more.
pub async fn run<R, W>(
    name: &str,
    reader: &mut R,
    writer: &mut W,
    agents: &Agents,
    quiet: bool,
    upload_slots: Option<&tokio::sync::Semaphore>,
) -> Result<Bootstrapped, BootstrapError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = Lines::default();
    let mut uploads = 0;
    let mut next = None;
    loop {
        let reply = match next.take() {
            Some(reply) => reply,
            None => lines.marker(name, reader).await?,
        };
        match reply {
            Reply::Exec => {
                return Ok(Bootstrapped {
                    uploaded: uploads > 0,
                });
            }
            Reply::Cached(dir) => info!(
                "{name}: agent found in the remote cache ({})",
                sanitize_line(dir.as_bytes())
            ),
            Reply::Stored(dir) => {
                info!("{name}: agent stored in {}", sanitize_line(dir.as_bytes()))
            }
            Reply::NoAgent(platform) => return Err(no_agent(agents, platform)),
            Reply::Upload { gzip, platform } => {
                let agent = agents
                    .for_platform(&platform)
                    .ok_or_else(|| no_agent(agents, platform.clone()))?;
                uploads += 1;
                let _slot = match upload_slots {
                    Some(slots) => Some(
                        slots
                            .acquire()
                            .await
                            .map_err(|_| BootstrapError::ShellExited)?,
                    ),
                    None => None,
                };
                let send = upload::send(name, agent, gzip, uploads, writer, quiet);
                next = lines.while_sending(name, reader, send).await?;
            }
            Reply::Error(why) => return Err(BootstrapError::Remote(sanitize_line(why.as_bytes()))),
            other => return Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &Reply) -> BootstrapError {
    BootstrapError::Unexpected(sanitize_line(format!("{reply:?}").as_bytes()))
}

/// No agent for `platform`: why the one there is cannot be used, or how
/// to add one.
fn no_agent(agents: &Agents, platform: String) -> BootstrapError {
    let machine = platform.rsplit(' ').next().unwrap_or("MACHINE");
    let why = match agents.why_not(&platform) {
        Some(e) => e.to_string(),
        None => {
            format!("build one with ./build-agents {machine}, or give --agent \"{platform}=PATH\"")
        }
    };
    BootstrapError::NoAgent { platform, why }
}

/// The images of the agents to offer, one per platform (read and hashed
/// off the async threads, once per process). An agent passed over (from
/// another build, unreadable) is said once under -v: it matters only for a
/// remote of its platform, whose failure then gives the reason.
pub async fn images(agents: &Agents) -> Result<Vec<Arc<Image>>, BootstrapError> {
    let agents = agents.clone();
    tokio::task::spawn_blocking(move || agents.usable(|e| info!("{e}")))
        .await
        .map_err(|e| BootstrapError::Join(std::io::Error::other(e)))?
        .map_err(BootstrapError::from)
}

/// How long the remote may take to close the channel after an upload
/// could not be sent, and an upload may take to finish once the remote
/// answered (its last bytes still in flight).
const SETTLE: Duration = Duration::from_secs(1);

/// The script's lines, read a byte at a time: after `MFS-EXEC` the agent's
/// frames follow, and none of them may be consumed here. A partial line is
/// kept here, not in a future, so a read given up (`select!`) loses
/// nothing.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The next `MFS-` line; noise from rc files is skipped.
    async fn marker<R: AsyncRead + Unpin>(
        &mut self,
        name: &str,
        reader: &mut R,
    ) -> Result<Reply, BootstrapError> {
        for _ in 0..200 {
            let line = tokio::time::timeout(MARKER_TIMEOUT, self.read_line(reader))
                .await
                .map_err(|_| BootstrapError::Timeout)?
                .map_err(BootstrapError::Read)?;
            let Some(line) = line else {
                return Err(BootstrapError::ShellExited);
            };
            match Reply::parse(&line) {
                Reply::Noise => debug!(
                    "{name}: remote shell printed {:?} before the bootstrap",
                    sanitize_line(&line)
                ),
                reply => return Ok(reply),
            }
        }
        Err(BootstrapError::Noise)
    }

    /// One line without its newline; `None` at the end of the stream.
    /// Cancel-safe: a byte read is in `self.partial` before any await.
    async fn read_line<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            let mut byte = [0u8; 1];
            if reader.read(&mut byte).await? == 0 {
                return Ok(match self.partial.is_empty() {
                    true => None,
                    false => Some(std::mem::take(&mut self.partial)),
                });
            }
            if byte[0] == b'\n' {
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
            if self.partial.len() < 4096 {
                self.partial.push(byte[0]);
            }
        }
    }

    /// Run `send` (an upload) while reading the channel. Returns the
    /// script's answer if it came while the upload was still being sent
    /// and the upload then finished.
    async fn while_sending<R, S>(
        &mut self,
        name: &str,
        reader: &mut R,
        send: S,
    ) -> Result<Option<Reply>, BootstrapError>
    where
        R: AsyncRead + Unpin,
        S: std::future::Future<Output = Result<(), upload::UploadError>>,
    {
        tokio::pin!(send);
        let early = tokio::select! {
            biased;
            sent = &mut send => match sent {
                Ok(()) => return Ok(None),
                // The channel may have closed under the upload: say so.
                Err(e) => return Err(match tokio::time::timeout(SETTLE, self.marker(name, reader)).await {
                    Ok(Err(BootstrapError::ShellExited)) => BootstrapError::ShellExited,
                    Ok(Ok(Reply::Error(why))) => BootstrapError::Remote(sanitize_line(why.as_bytes())),
                    _ => BootstrapError::Upload(e),
                }),
            },
            early = self.marker(name, reader) => early?,
        };
        // The script answered before the upload was all sent. An error is
        // its last word. Else all of the upload may be in flight already
        // (then the send ends now), or the script stopped reading it (then
        // the shell exits, or it hangs: either is a failure).
        if let Reply::Error(why) = early {
            return Err(BootstrapError::Remote(sanitize_line(why.as_bytes())));
        }
        let settled = tokio::time::timeout(SETTLE, async {
            tokio::select! {
                biased;
                sent = &mut send => Settled::Sent(sent.is_ok()),
                next = self.marker(name, reader) => match next {
                    Err(BootstrapError::ShellExited) => Settled::Exited,
                    _ => Settled::Spoke,
                },
            }
        })
        .await;
        match settled {
            Ok(Settled::Sent(true)) => Ok(Some(early)),
            Ok(Settled::Exited) => Err(BootstrapError::ShellExited),
            _ => Err(BootstrapError::UploadUnread(sanitize_line(
                format!("{early:?}").as_bytes(),
            ))),
        }
    }
}

/// How an upload ended after the script answered early.
enum Settled {
    /// The rest of the upload went out (or failed to).
    Sent(bool),
    /// The channel ended: the shell exited.
    Exited,
    /// The script said more, still without reading the upload.
    Spoke,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> Vec<Arc<Image>> {
        ["Linux x86_64", "Linux aarch64"]
            .iter()
            .map(|p| {
                Arc::new(Image {
                    platform: p.to_string(),
                    path: "/x".into(),
                    size: 1234,
                    sha256: "ab".repeat(32),
                })
            })
            .collect()
    }

    #[test]
    fn the_command_is_one_line_any_login_shell_passes_on() {
        for placement in [
            Placement::default(),
            Placement {
                agent_dir: Some("/opt/agents".into()),
                privileged: true,
                compress: false,
            },
        ] {
            let command = command(&images(), &placement);
            assert!(command.starts_with("exec /bin/sh -c '"));
            assert_eq!(command.matches('\'').count(), 2);
            assert!(!command.contains(['\n', '!', '\\']));
            let script = &command["exec /bin/sh -c '".len()..command.len() - 1];
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status()
                .unwrap();
            assert!(status.success(), "{script}");
        }
    }

    #[test]
    fn agent_dirs_that_cannot_pass_are_refused() {
        assert!(agent_dir("/opt/mitogen fakessh").is_ok());
        for bad in [
            "", "/a\"b", "/a$HOME", "/a`x`", "/a\\b", "/a!b", "/a\nb", "/a'b",
        ] {
            assert!(agent_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::parse(b"MFS-EXEC"), Reply::Exec);
        assert_eq!(Reply::parse(b"MFS-EXEC\r"), Reply::Exec);
        assert_eq!(
            Reply::parse(b"MFS-UPLOAD gz Linux aarch64"),
            Reply::Upload {
                gzip: true,
                platform: "Linux aarch64".into()
            }
        );
        assert_eq!(
            Reply::parse(b"MFS-NOAGENT Linux sparc64"),
            Reply::NoAgent("Linux sparc64".into())
        );
        assert!(matches!(
            Reply::parse(b"MFS-UPLOAD bz2 x"),
            Reply::Unknown(_)
        ));
        assert_eq!(Reply::parse(b"Welcome to host"), Reply::Noise);
        assert_eq!(
            Reply::parse(b"MFS-ERROR \x1b]0;owned\x07\x1b[2J\rPassword:\r"),
            Reply::Error("\\033]0;owned\\007\\033[2J\\015Password:".into())
        );
    }
}
