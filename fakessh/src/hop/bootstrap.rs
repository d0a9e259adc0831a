//! Getting our agent running on the far side of an ssh channel.
//!
//! One POSIX `sh` snippet runs on the remote: if the cache holds a file
//! named by our executable's SHA-256 and its content still hashes to that
//! name, it is exec'd in agent mode; otherwise the snippet asks for the
//! binary, receives exactly SIZE bytes, verifies the checksum, stores it
//! mode 0700 (atomically, via a temporary name) and execs it. The remote
//! needs nothing but sh and standard utilities (`head -c`, `sha256sum` or
//! `shasum`, `uname`, `mkdir`, `mv`). ssh hops and privilege hops both
//! start their agents this way.

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

/// Our own executable, as uploaded to remote hosts.
#[derive(Debug)]
pub struct AgentImage {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Why the agent could not be started on the far side.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read our own executable: {0}")]
    OwnExecutable(std::io::Error),
    /// The snippet said why (`MFS-ERROR ...`).
    #[error("{0}")]
    Remote(String),
    #[error("the bootstrap did not answer within {}s", MARKER_TIMEOUT.as_secs())]
    Timeout,
    #[error("bootstrap failed: {0}")]
    Read(std::io::Error),
    #[error("the remote shell exited during the bootstrap")]
    ShellExited,
    #[error("the remote shell prints too much noise on stdout (check its rc files)")]
    Noise,
    #[error("unexpected bootstrap answer {0:?}")]
    Unexpected(String),
    #[error("agent upload failed: {0}")]
    Upload(std::io::Error),
    #[error("our executable changed size during upload")]
    SizeChanged,
}

/// How long each step of the snippet may take to answer.
const MARKER_TIMEOUT: Duration = Duration::from_secs(60);

static IMAGE: OnceLock<Result<AgentImage, std::io::ErrorKind>> = OnceLock::new();

/// Hash our executable once per process (it is the agent we upload).
pub fn agent_image() -> Result<&'static AgentImage, BootstrapError> {
    IMAGE
        .get_or_init(|| {
            let path = PathBuf::from("/proc/self/exe");
            let mut file = std::fs::File::open(&path).map_err(|e| e.kind())?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(|e| e.kind())?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                hasher.update(&buf[..n]);
            }
            let sha256 = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(AgentImage { path, size, sha256 })
        })
        .as_ref()
        .map_err(|kind| BootstrapError::OwnExecutable((*kind).into()))
}

/// `uname -sm` of a machine that can run this build.
fn expected_uname() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        other => other,
    };
    format!("{os} {}", std::env::consts::ARCH)
}

/// The remote command for an ssh channel: the bootstrap snippet, run by
/// `/bin/sh` whatever the account's login shell is.
pub fn bootstrap_snippet(image: &AgentImage) -> String {
    format!("exec /bin/sh -c '{}'", bootstrap_script(image, false))
}

/// The bootstrap as a `sh` script. After a privilege change the inherited
/// `HOME` and `XDG_CACHE_HOME` may still be the previous user's, so the
/// cache is then placed under the new user's passwd home.
pub fn bootstrap_script(image: &AgentImage, privileged: bool) -> String {
    let prelude = if privileged {
        r#"unset XDG_CACHE_HOME
h="$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)"
[ -n "$h" ] || h="$(awk -F: -v u="$(id -u)" "\$3 == u {print \$6}" /etc/passwd)"
[ -n "$h" ] && HOME="$h" && export HOME
"#
    } else {
        ""
    };
    let script = format!(
        r#"{prelude}set -u
want="{uname}"
have="$(uname -sm)"
if [ "$have" != "$want" ]; then echo "MFS-ERROR remote is $have, this mitogen-fakessh is built for $want"; exit 1; fi
d="${{XDG_CACHE_HOME:-$HOME/.cache}}/mitogen-fakessh"
f="$d/{sha}"
sum() {{ sha256sum "$1" 2>/dev/null || shasum -a 256 "$1" 2>/dev/null || openssl dgst -sha256 -r "$1"; }}
if [ -f "$f" ] && [ -x "$f" ] && [ "$(sum "$f" | cut -c1-64)" = "{sha}" ]; then
  echo MFS-CACHED
else
  echo MFS-UPLOAD
  umask 077
  mkdir -p "$d" || {{ echo "MFS-ERROR cannot create $d"; exit 1; }}
  t="$d/.{sha}.$$"
  head -c {size} > "$t" || {{ rm -f "$t"; echo "MFS-ERROR cannot write $t"; exit 1; }}
  got="$(sum "$t" | cut -c1-64)"
  if [ "$got" != "{sha}" ]; then rm -f "$t"; echo "MFS-ERROR upload corrupted (checksum $got)"; exit 1; fi
  chmod 700 "$t" && mv -f "$t" "$f" || {{ rm -f "$t"; echo "MFS-ERROR cannot store $f"; exit 1; }}
fi
echo MFS-EXEC
exec "$f" {agent_arg}"#,
        prelude = prelude,
        uname = expected_uname(),
        sha = image.sha256,
        size = image.size,
        agent_arg = crate::roles::AGENT_ARG,
    );
    debug_assert!(!script.contains('\''));
    script
}

/// What the bootstrap did.
pub struct Bootstrapped {
    pub uploaded: bool,
}

/// Drive the snippet: answer an upload request, wait for the exec marker.
/// After `Ok`, the next bytes on the channel are the agent's frames. An
/// upload shows its progress on a terminal, unless `quiet` (`-q`).
pub async fn run<R, W>(
    name: &str,
    reader: &mut R,
    writer: &mut W,
    image: &AgentImage,
    quiet: bool,
) -> Result<Bootstrapped, BootstrapError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let line = marker(name, reader).await?;
    match line.as_str() {
        "MFS-CACHED" => info!("{name}: agent found in the remote cache"),
        "MFS-UPLOAD" => {
            info!("{name}: uploading agent ({} bytes)", image.size);
            let mut file = tokio::fs::File::open(&image.path)
                .await
                .map_err(BootstrapError::OwnExecutable)?;
            let sent = upload(name, &mut file, writer, image.size, quiet).await?;
            writer.flush().await.map_err(BootstrapError::Upload)?;
            if sent != image.size {
                return Err(BootstrapError::SizeChanged);
            }
        }
        other => return Err(BootstrapError::Unexpected(other.to_string())),
    }
    let done = marker(name, reader).await?;
    if done != "MFS-EXEC" {
        return Err(BootstrapError::Unexpected(done));
    }
    Ok(Bootstrapped {
        uploaded: line == "MFS-UPLOAD",
    })
}

/// Copy our executable to the channel; on a terminal, show progress (slow
/// links make a silent multi-megabyte upload look like a hang).
async fn upload<W: AsyncWrite + Unpin>(
    name: &str,
    file: &mut tokio::fs::File,
    writer: &mut W,
    size: u64,
    quiet: bool,
) -> Result<u64, BootstrapError> {
    use std::io::IsTerminal;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bytes}/{total_bytes} {bar:30} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("mitogen-fakessh: uploading the agent to {name}"));
        bar
    });
    let mut buf = vec![0u8; 256 << 10];
    let mut sent = 0u64;
    while sent < size {
        let want = buf.len().min((size - sent) as usize);
        let n = file
            .read(&mut buf[..want])
            .await
            .map_err(BootstrapError::OwnExecutable)?;
        if n == 0 {
            break;
        }
        writer
            .write_all(&buf[..n])
            .await
            .map_err(BootstrapError::Upload)?;
        sent += n as u64;
        if let Some(bar) = &bar {
            bar.set_position(sent);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(sent)
}

/// One line the bootstrap snippet printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `MFS-CACHED`: the cached agent is good.
    Cached,
    /// `MFS-UPLOAD`: send the agent now.
    Upload,
    /// `MFS-EXEC`: the agent starts; frames follow this line.
    Exec,
    /// `MFS-ERROR why`.
    Error(String),
    /// Another `MFS-` line: a snippet of another version.
    Unknown(String),
    /// Anything else: noise from the remote's rc files.
    Noise,
}

impl Reply {
    /// What one line (without its newline) says.
    pub fn parse(line: &[u8]) -> Reply {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        match line {
            "MFS-CACHED" => Reply::Cached,
            "MFS-UPLOAD" => Reply::Upload,
            "MFS-EXEC" => Reply::Exec,
            _ => match line.strip_prefix("MFS-ERROR ") {
                Some(why) => Reply::Error(why.to_string()),
                None if line.starts_with("MFS-") => Reply::Unknown(line.to_string()),
                None => Reply::Noise,
            },
        }
    }
}

/// The next `MFS-` line; noise from rc files is skipped, `MFS-ERROR` fails.
async fn marker<R: AsyncRead + Unpin>(
    name: &str,
    reader: &mut R,
) -> Result<String, BootstrapError> {
    for _ in 0..200 {
        let line = tokio::time::timeout(MARKER_TIMEOUT, read_line(reader))
            .await
            .map_err(|_| BootstrapError::Timeout)?
            .map_err(BootstrapError::Read)?;
        let Some(line) = line else {
            return Err(BootstrapError::ShellExited);
        };
        match Reply::parse(line.as_bytes()) {
            Reply::Error(why) => return Err(BootstrapError::Remote(why)),
            Reply::Noise => debug!("{name}: remote shell printed {line:?} before the bootstrap"),
            _ => return Ok(line),
        }
    }
    Err(BootstrapError::Noise)
}

async fn read_line<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).await? == 0 {
            return Ok(if line.is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(&line).into_owned())
            });
        }
        if byte[0] == b'\n' {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        if line.len() < 4096 {
            line.push(byte[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_single_quoted_sh() {
        let image = AgentImage {
            path: "/x".into(),
            size: 1234,
            sha256: "ab".repeat(32),
        };
        let p = bootstrap_script(&image, true);
        assert!(!p.contains('\''));
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", &p])
            .status()
            .unwrap();
        assert!(status.success());
        let s = bootstrap_snippet(&image);
        assert!(s.starts_with("exec /bin/sh -c '"));
        assert_eq!(s.matches('\'').count(), 2);
        assert!(s.contains("head -c 1234"));
        // The snippet is valid sh syntax.
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", &s["exec /bin/sh -c '".len()..s.len() - 1]])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
