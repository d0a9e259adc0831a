//! Sending an agent to a bootstrap script that asked for it: its length on
//! a line, then the bytes (gzip'd or raw, as the script asked). On a
//! terminal the host shows the progress: a slow link makes a silent
//! multi-megabyte upload look like a hang.

use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tracing::info;

use super::agents::{Agent, AgentError};

/// Why an agent could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("agent image upload failed: {0}")]
    Send(std::io::Error),
    #[error("agent image upload stalled: the remote read nothing for {}s", STALL_TIMEOUT.as_secs())]
    Stalled,
}

/// How long one piece of an upload may wait for the remote to make room.
pub const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Environment variable for the tests of the checksum only: `N` makes the
/// host corrupt its first N uploads (a byte flipped in the middle);
/// `truncate` makes it send half of the first one and fail.
pub const CORRUPT_UPLOADS_ENV: &str = "MITOGEN_FAKESSH_TEST_CORRUPT_UPLOADS";

/// Send `agent`. The first attempt of a bootstrap sends the `.gz` beside
/// the agent (or what was compressed for an earlier hop); a later one
/// compresses afresh, in case what lies beside it is what went wrong.
pub async fn send<W: AsyncWrite + Unpin>(
    name: &str,
    agent: &Arc<Agent>,
    gzip: bool,
    attempt: u32,
    writer: &mut W,
    quiet: bool,
) -> Result<(), UploadError> {
    let loading = agent.clone();
    let (mut bytes, raw_size) = tokio::task::spawn_blocking(move || {
        let raw_size = loading.image()?.size;
        let bytes = match (gzip, attempt) {
            (true, 1) => loading.gzip()?.as_ref().clone(),
            (true, _) => loading.gzip_fresh()?,
            (false, _) => loading.raw()?,
        };
        Ok::<_, AgentError>((bytes, raw_size))
    })
    .await
    .map_err(|e| UploadError::Send(std::io::Error::other(e)))??;
    let truncate = corrupt_for_tests(&mut bytes);
    info!(
        "{name}: uploading agent for {} ({} bytes{}, {raw_size} bytes unpacked)",
        agent.platform,
        bytes.len(),
        if gzip { " gzip'd" } else { "" },
    );
    let progress = Progress::start(name, bytes.len() as u64, quiet);
    let stalled = |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled");
    let send = async {
        let length = format!("{}\n", bytes.len());
        timeout(STALL_TIMEOUT, writer.write_all(length.as_bytes()))
            .await
            .map_err(stalled)??;
        let sent = match truncate {
            true => &bytes[..bytes.len() / 2],
            false => &bytes[..],
        };
        for chunk in sent.chunks(256 << 10) {
            timeout(STALL_TIMEOUT, writer.write_all(chunk))
                .await
                .map_err(stalled)??;
            progress.advance(chunk.len() as u64);
        }
        timeout(STALL_TIMEOUT, writer.flush())
            .await
            .map_err(stalled)??;
        match truncate {
            true => Err(std::io::Error::other("truncated for a test")),
            false => Ok(()),
        }
    };
    let sent = send.await.map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => UploadError::Stalled,
        _ => UploadError::Send(e),
    });
    progress.finish();
    sent
}

/// The test hook of [`CORRUPT_UPLOADS_ENV`]; true: truncate this one.
fn corrupt_for_tests(bytes: &mut [u8]) -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CORRUPTED: AtomicU32 = AtomicU32::new(0);
    let Ok(wanted) = std::env::var(CORRUPT_UPLOADS_ENV) else {
        return false;
    };
    let first = |n: u32| CORRUPTED.fetch_add(1, Ordering::Relaxed) < n;
    match wanted.parse::<u32>() {
        Ok(n) if first(n) && !bytes.is_empty() => {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            false
        }
        Ok(_) => false,
        Err(_) => wanted == "truncate" && first(1),
    }
}

/// A progress bar on stderr while uploading, if stderr is a terminal and
/// not `-q`.
struct Progress {
    #[cfg(feature = "host")]
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    #[cfg(feature = "host")]
    fn start(name: &str, len: u64, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bytes}/{total_bytes} {bar:30} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!("mitogen-fakessh: uploading the agent to {name}"));
            bar
        });
        Progress { bar }
    }

    /// An agent-only build starts privilege hops, whose stderr is no
    /// terminal of the user's.
    #[cfg(not(feature = "host"))]
    fn start(_name: &str, _len: u64, _quiet: bool) -> Progress {
        Progress {}
    }

    fn advance(&self, _n: u64) {
        #[cfg(feature = "host")]
        if let Some(bar) = &self.bar {
            bar.inc(_n);
        }
    }

    fn finish(self) {
        #[cfg(feature = "host")]
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
