//! Getting our agent running on the far side of an ssh channel or a
//! privilege change, with nothing installed there beforehand.
//!
//! One POSIX `sh` script runs on the remote. It is a single line free of
//! quotes, `!` and backslashes inside `exec /bin/sh -c '...'`, so it
//! reaches `/bin/sh` unchanged through every common login shell (sh, bash,
//! dash, zsh, ksh, fish, tcsh/csh, busybox ash). It:
//!
//! 1. asks `uname -sm` which platform this is, and knows the checksum of
//!    the agent for each platform the host can upload;
//! 2. looks for that agent in the cache places, in order: the cache
//!    (`${XDG_CACHE_HOME:-$HOME/.cache}/mitogen-fakessh`),
//!    `$XDG_RUNTIME_DIR/mitogen-fakessh`, then `mitogen-fakessh-UID` in
//!    `/dev/shm`, `/tmp` and `/var/tmp` (or only `--agent-dir`). A copy
//!    whose checksum matches, in a place where it was seen to execute, is
//!    exec'd at once: a warm start costs no extra round trip;
//! 3. otherwise asks for the agent (gzip'd when the remote has gzip),
//!    receives it, decompressing and checksumming as it arrives (asking
//!    once more if the checksum does not match), stores it 0700 under a
//!    temporary name, renames it into place and checks it executes there
//!    (`__probe`): a place that is noexec, missing or not writable is
//!    skipped, and the error names every place tried.
//!
//! Nothing half-written ever takes the agent's name, and the temporary
//! files go when the script ends without exec'ing the agent (an error, a
//! signal, a closed connection).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::{debug, info};

use super::agents::{AgentError, Agents, Image};
use super::upload;

/// Why the agent could not be started on the far side.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The script said why (`MFS-ERROR ...`).
    #[error("{0}")]
    Remote(String),
    #[error("no agent for the remote platform {platform:?} (uname -sm): {why}")]
    NoAgent { platform: String, why: String },
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
    #[error(transparent)]
    Upload(#[from] upload::UploadError),
    #[error("cannot read the agents: {0}")]
    Join(std::io::Error),
    #[error(transparent)]
    AgentDir(#[from] AgentDirError),
}

/// An `--agent-dir` the script cannot carry through every login shell.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "an agent directory with a quote, $, `, \\, ! or a control character cannot pass through every login shell"
)]
pub struct AgentDirError(pub String);

/// Check an `--agent-dir` (for clap, and again where the script is made).
pub fn agent_dir(dir: &str) -> Result<String, AgentDirError> {
    let bad = |c: char| matches!(c, '"' | '\'' | '$' | '`' | '\\' | '!') || c.is_control();
    match dir.is_empty() || dir.contains(bad) {
        true => Err(AgentDirError(dir.to_string())),
        false => Ok(dir.to_string()),
    }
}

/// How long each step of the script may take to answer.
const MARKER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the script needs to know, besides the agents.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// `--agent-dir`: the only place to keep the agent.
    pub agent_dir: Option<String>,
    /// After a privilege change the inherited `HOME` and `XDG_*` may still
    /// be the previous user's: take the home from the passwd database.
    pub privileged: bool,
    /// Ask for the agent gzip'd when the remote has gzip (over a network;
    /// not between two processes on one machine).
    pub compress: bool,
}

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
        match word {
            "MFS-EXEC" if rest.is_empty() => Reply::Exec,
            "MFS-CACHED" => Reply::Cached(rest.to_string()),
            "MFS-STORED" => Reply::Stored(rest.to_string()),
            "MFS-NOAGENT" => Reply::NoAgent(rest.to_string()),
            "MFS-ERROR" => Reply::Error(rest.to_string()),
            "MFS-UPLOAD" => match rest.split_once(' ') {
                Some(("gz", platform)) => Reply::Upload {
                    gzip: true,
                    platform: platform.to_string(),
                },
                Some(("raw", platform)) => Reply::Upload {
                    gzip: false,
                    platform: platform.to_string(),
                },
                _ => Reply::Unknown(line.to_string()),
            },
            _ if line.starts_with("MFS-") => Reply::Unknown(line.to_string()),
            _ => Reply::Noise,
        }
    }
}

/// The script as `sh` reads it: one command a line, so it can be read.
/// The upload runs under umask 077; the agent it stores starts with the
/// session's own umask again (the one sshd gave: its inherited 022 on
/// Debian, or pam_umask's), so commands get the same umask whether this
/// run uploaded the agent or found it cached.
fn script(images: &[Arc<Image>], placement: &Placement) -> String {
    let prelude = if placement.privileged {
        r#"unset XDG_CACHE_HOME XDG_RUNTIME_DIR
i="$(id -u)"
h="$(getent passwd "$i" 2>/dev/null | cut -d: -f6)"
[ -n "$h" ] || while IFS=: read -r a b c e f g k ; do [ "$c" = "$i" ] && h="$g" && break ; done < /etc/passwd
HOME="$h"
export HOME"#
    } else {
        ""
    };
    let cases: String = images
        .iter()
        .map(|i| format!("\"{}\") s={} l={} ;;\n", i.platform, i.sha256, i.size))
        .collect();
    let places = match &placement.agent_dir {
        Some(dir) => format!("\"{dir}\""),
        None => concat!(
            r#""${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/mitogen-fakessh" "#,
            r#"${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/mitogen-fakessh"} "#,
            r#""/dev/shm/mitogen-fakessh-$i" "/tmp/mitogen-fakessh-$i" "/var/tmp/mitogen-fakessh-$i""#
        )
        .to_string(),
    };
    let compress = match placement.compress {
        // Tried, not looked up: busybox's `command -v` names applets
        // that are not there.
        true => r#"[ "$(printf x | gzip -c 2>/dev/null | gzip -dc 2>/dev/null)" = x ] && z=gz"#,
        false => "",
    };
    format!(
        r#"{prelude}
u="$(uname -sm 2>&1)" || {{ echo "MFS-ERROR uname -sm failed: $u" ; exit 1 ; }}
case "$u" in
{cases}*) echo "MFS-NOAGENT $u" ; exit 1 ;;
esac
sum() {{ sha256sum "$1" 2>/dev/null || shasum -a 256 "$1" 2>/dev/null || openssl dgst -sha256 -r "$1" 2>/dev/null ; }}
sumin() {{ sha256sum 2>/dev/null || shasum -a 256 2>/dev/null || openssl dgst -sha256 -r 2>/dev/null ; }}
good() {{ [ -f "$1" ] && [ "$(sum "$1" | cut -c1-64)" = "$s" ] ; }}
i="$(id -u)"
for d in {places} ; do
if [ -f "$d/.ok-$s" ] && good "$d/$s" ; then
echo "MFS-CACHED $d"
echo MFS-EXEC
exec "$d/$s" {agent}
fi
done
m="$(umask)"
umask 077
z=raw
{compress}
t=""
f=""
why=""
gone() {{ rm -f "$f" ; }}
trap gone EXIT HUP INT PIPE TERM
for d in {places} ; do
mkdir -p "$d" 2>/dev/null || {{ why="$why $d (cannot create it);" ; continue ; }}
test -L "$d" && {{ why="$why $d (a symbolic link);" ; continue ; }}
[ -O "$d" ] || {{ why="$why $d (not ours);" ; continue ; }}
chmod 700 "$d"
f="$d/.$s.$$"
if good "$d/$s" ; then
:
elif [ -z "$t" ] ; then
n=0
while : ; do
n=$((n+1))
echo "MFS-UPLOAD $z $u"
read len || exit 1
if [ "$z" = gz ] ; then
r="$(head -c "$len" | {{ gzip -dc 2>/dev/null ; cat >/dev/null ; }} | tee "$f" 2>/dev/null | sumin | cut -c1-64)"
else
r="$(head -c "$len" | {{ tee "$f" 2>/dev/null ; cat >/dev/null ; }} | sumin | cut -c1-64)"
fi
[ "$r" = "$s" ] && break
rm -f "$f"
[ "$n" -lt 2 ] || {{ echo "MFS-ERROR the agent arrived corrupted twice (checksum mismatch)" ; exit 1 ; }}
done
w="$(wc -c < "$f" 2>/dev/null)"
[ "$((w+0))" = "$l" ] && chmod 700 "$f" && mv -f "$f" "$d/$s" || {{ rm -f "$f" ; why="$why $d (cannot store it);" ; continue ; }}
else
cp "$t" "$f" && chmod 700 "$f" && mv -f "$f" "$d/$s" || {{ rm -f "$f" ; why="$why $d (cannot copy it there);" ; continue ; }}
fi
t="$d/$s"
if [ "$("$d/$s" {probe} 2>/dev/null)" = MFS-OK ] ; then
: > "$d/.ok-$s"
echo "MFS-STORED $d"
echo MFS-EXEC
umask "$m"
exec "$d/$s" {agent}
fi
why="$why $d (cannot execute there);"
done
echo "MFS-ERROR the agent cannot run in any place tried:$why set one with --agent-dir DIR"
exit 1"#,
        agent = crate::roles::AGENT_ARG,
        probe = crate::roles::PROBE_ARG,
    )
}

/// Join the script's lines into one: `;` between commands, a blank after
/// a word that continues the command (`then`, `do`, `else`, `in`, `;;`,
/// `{`, `||`, `&&`).
fn one_line(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            let continues = ["then", "do", "else", "in", ";;", "{", "||", "&&"]
                .iter()
                .any(|w| out.ends_with(w));
            out.push_str(if continues { " " } else { " ; " });
        }
        out.push_str(line);
    }
    out
}

/// The remote command for an ssh channel (or a privilege hop's `sh -c`):
/// the script on one line, run by `/bin/sh` whatever the login shell is.
pub fn command(images: &[Arc<Image>], placement: &Placement) -> String {
    let line = one_line(&script(images, placement));
    debug_assert!(!line.contains(['\'', '!', '\\', '\n']), "{line}");
    format!("exec /bin/sh -c '{line}'")
}

/// The script alone (for `sh -c` after sudo, su or doas).
pub fn sh_script(images: &[Arc<Image>], placement: &Placement) -> String {
    one_line(&script(images, placement))
}

/// What the bootstrap did.
pub struct Bootstrapped {
    pub uploaded: bool,
}

/// Drive the script: answer upload requests, wait for the exec marker.
/// After `Ok`, the next bytes on the channel are the agent's frames. An
/// upload shows its progress on a terminal, unless `quiet` (`-q`); it
/// waits for one of `upload_slots`, if given (a host starting many hops).
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
    let mut uploads = 0;
    loop {
        match marker(name, reader).await? {
            Reply::Exec => {
                return Ok(Bootstrapped {
                    uploaded: uploads > 0,
                });
            }
            Reply::Cached(dir) => info!("{name}: agent found in the remote cache ({dir})"),
            Reply::Stored(dir) => info!("{name}: agent stored in {dir}"),
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
                upload::send(name, agent, gzip, uploads, writer, quiet).await?;
            }
            Reply::Error(why) => return Err(BootstrapError::Remote(why)),
            other => return Err(BootstrapError::Unexpected(format!("{other:?}"))),
        }
    }
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

/// The next `MFS-` line; noise from rc files is skipped.
async fn marker<R: AsyncRead + Unpin>(name: &str, reader: &mut R) -> Result<Reply, BootstrapError> {
    for _ in 0..200 {
        let line = tokio::time::timeout(MARKER_TIMEOUT, read_line(reader))
            .await
            .map_err(|_| BootstrapError::Timeout)?
            .map_err(BootstrapError::Read)?;
        let Some(line) = line else {
            return Err(BootstrapError::ShellExited);
        };
        match Reply::parse(line.as_bytes()) {
            Reply::Noise => debug!("{name}: remote shell printed {line:?} before the bootstrap"),
            reply => return Ok(reply),
        }
    }
    Err(BootstrapError::Noise)
}

/// One line, read a byte at a time: after `MFS-EXEC` the agent's frames
/// follow, and none of them may be consumed here.
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
    }
}
