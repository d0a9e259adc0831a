//! `local`: our own executable in agent mode, as the same user, over a
//! socketpair. No sshd involved.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use router::connection::{FrameReader, FrameWriter};
use router::frame::DEFAULT_MAX_PAYLOAD;
use router::message::{AgentConfig, HOST_ID};
use tokio::process::Command;

use super::error::HopFailure;
use super::handshake::{self, LocalAgent, StartedAgent};

/// Environment variable naming another program to run as context 1 (the
/// first context the host starts) when that is a `local` hop; for the
/// trust and reliability tests only.
pub const AGENT_PROGRAM_ENV: &str = "MITOGEN_FAKESSH_TEST_AGENT_PROGRAM";
/// With [`AGENT_PROGRAM_ENV`]: the context it replaces instead of 1, when
/// that is a `local` hop started by an agent that inherited the variable
/// (a hostile context below a real agent).
pub const AGENT_CONTEXT_ENV: &str = "MITOGEN_FAKESSH_TEST_AGENT_CONTEXT";

/// Start our own executable in agent mode.
pub async fn start(config: AgentConfig) -> Result<LocalAgent, HopFailure> {
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(HopFailure::io("socketpair"))?;
    // Testing hook: the reliability tests put a deliberately misbehaving
    // agent here to prove the host and its other agents withstand it.
    let replaced = match std::env::var(AGENT_CONTEXT_ENV) {
        Ok(id) => id.parse().ok() == Some(config.context_id),
        Err(_) => config.parent_ids == [HOST_ID] && config.context_id == 1,
    };
    let exe = match std::env::var_os(AGENT_PROGRAM_ENV) {
        Some(p) if replaced => std::path::PathBuf::from(p),
        _ => std::env::current_exe().map_err(HopFailure::io("cannot find our own executable"))?,
    };
    let theirs_out: OwnedFd = theirs.try_clone().map_err(HopFailure::io("dup"))?.into();
    let child = Command::new(&exe)
        .arg(crate::roles::AGENT_ARG)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C meant for the wrapped command must
        // not kill the agents underneath it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HopFailure::Spawn {
            program: format!("agent {}", exe.display()),
            source,
        })?;
    ours.set_nonblocking(true)
        .map_err(HopFailure::io("socketpair"))?;
    let stream = tokio::net::UnixStream::from_std(ours).map_err(HopFailure::io("socketpair"))?;
    let (r, w) = stream.into_split();
    let (reader, writer, hello) = handshake::run(
        FrameReader::new(r, DEFAULT_MAX_PAYLOAD),
        FrameWriter::new(w),
        &config,
    )
    .await?;
    Ok(StartedAgent {
        reader,
        writer,
        hello,
        process: Some(child),
        uploaded: false,
    })
}
