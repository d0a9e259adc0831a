//! Privilege hops: sudo, su and doas under the hybrid pty.
//!
//! The hop's program gets a fresh pty as its controlling terminal and its
//! stderr, so sudo's `requiretty` is satisfied and any password prompt
//! appears there, while stdin and stdout are a socketpair that carries the
//! bootstrap and then the frames, 8-bit clean. sudo is given a unique
//! prompt (`-p`) so a prompt is never confused with other output. The
//! password is written once; a second prompt means it was wrong, and the hop
//! fails at once instead of looping ([`pty`]). Each wait, for the prompt,
//! for the password to be taken and for the answer, has its own limit and
//! ends with a message saying what the program printed last ([`progress`]).

pub mod progress;
pub mod prompt;
pub mod pty;
pub mod verdict;

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use router::connection::{FrameReader, FrameWriter};
use router::frame::DEFAULT_MAX_PAYLOAD;
use router::hop::Hop;
use router::message::{AgentConfig, Secret};
use tokio::process::Command;
use tokio::sync::watch;

use super::agents::Agents;
use super::bootstrap::{self, Placement};
use super::error::HopFailure;
use super::handshake::{self, LocalAgent, StartedAgent};
use crate::fdstream::FdStream;
use crate::sys;

/// How long the program and the bootstrap behind it may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// A prompt nobody else prints, for sudo's `-p`.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "mitogen-fakessh-password-{:x}{:x}:",
        std::process::id(),
        nanos
    )
}

/// The command line that runs `script` as the hop's target user.
fn argv(hop: &Hop, prompt: &str, script: &str) -> Vec<String> {
    let user = hop.target_user().unwrap_or("root").to_string();
    let words: Vec<&str> = match hop {
        Hop::Sudo { .. } => vec!["sudo", "-p", prompt, "-H", "-u", &user, "--"],
        Hop::Su { .. } => vec!["su", &user, "-s", "/bin/sh"],
        _ => vec!["doas", "-u", &user, "--"],
    };
    let mut argv: Vec<String> = words.into_iter().map(str::to_string).collect();
    if !matches!(hop, Hop::Su { .. }) {
        argv.push("/bin/sh".into());
    }
    argv.extend(["-c".to_string(), script.to_string()]);
    argv
}

/// Start `hop` from here, bootstrap our agent through it, handshake.
/// The agent uploaded is our own executable: a privilege hop stays on the
/// machine the hop before it runs on.
pub async fn start(
    hop: &Hop,
    password: Option<&Secret>,
    config: AgentConfig,
    agent_dir: Option<String>,
) -> Result<LocalAgent, HopFailure> {
    let agents = Agents::own();
    let images = bootstrap::images(&agents).await?;
    let agent_dir = agent_dir
        .map(|dir| bootstrap::agent_dir(&dir))
        .transpose()
        .map_err(bootstrap::BootstrapError::from)?;
    let placement = Placement {
        agent_dir,
        privileged: true,
        // A socketpair on this machine: compressing costs more than it saves.
        compress: false,
    };
    let prompt = marker();
    let words = argv(hop, &prompt, &bootstrap::sh_script(&images, &placement));
    let pty = nix::pty::openpty(None, None)
        .map_err(|e| HopFailure::io("cannot allocate a pty")(e.into()))?;
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(HopFailure::io("socketpair"))?;
    let theirs_out: OwnedFd = theirs.try_clone().map_err(HopFailure::io("dup"))?.into();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..])
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::from(pty.slave))
        // English messages, so refusals can be recognised.
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    sys::controlling_tty_on_stderr(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| HopFailure::Spawn {
        program: words[0].clone(),
        source,
    })?;
    drop(cmd); // closes our copies of the slave and of the child's socket end

    let master = FdStream::new(pty.master).map_err(HopFailure::io("pty"))?;
    let answer_on_stdin = match hop {
        Hop::Su { .. } => Some(ours.try_clone().map_err(HopFailure::io("dup"))?),
        _ => None,
    };
    let verdict = Arc::new(Mutex::new(pty::Verdict::default()));
    let progress = progress::Progress::default();
    let (booted_tx, booted_rx) = watch::channel(false);
    let mut watcher = tokio::spawn(
        pty::Watch {
            name: config.name.clone(),
            master,
            answer_on_stdin,
            prompt,
            password: password.cloned(),
            verdict: verdict.clone(),
            booted: booted_rx,
            pid: child.id(),
            progress: progress.clone(),
        }
        .run(),
    );

    ours.set_nonblocking(true)
        .map_err(HopFailure::io("socketpair"))?;
    let stream = tokio::net::UnixStream::from_std(ours).map_err(HopFailure::io("socketpair"))?;
    let (mut r, mut w) = stream.into_split();
    let mut shell_output = progress::FirstByte {
        inner: &mut r,
        progress: Some(progress.clone()),
    };
    let booting = tokio::time::timeout(
        BOOT_TIMEOUT,
        bootstrap::run(
            &config.name,
            &mut shell_output,
            &mut w,
            &agents,
            config.log_level == 0,
            None,
        ),
    );
    // The program (and the shell it runs) exiting ends the bootstrap at
    // once: a child of that shell may still hold the socket open. So does
    // a step of the program's that outlasts its limit.
    let booted = tokio::select! {
        biased;
        booted = booting => booted.map_err(|_| HopFailure::Silent(BOOT_TIMEOUT.as_secs())),
        _ = child.wait() => Ok(Err(bootstrap::BootstrapError::ShellExited)),
        stall = progress.stalled(&words[0], &verdict) => Err(HopFailure::from(stall)),
    };
    let failure = match booted {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(HopFailure::from(e)),
        Err(stall @ HopFailure::Stalled(_)) => {
            // Said everything: what the program printed is in the message.
            let _ = child.start_kill();
            watcher.abort();
            return Err(stall);
        }
        Err(silent) => Some(silent),
    };
    let tail = || {
        let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
        v.tail.clone()
    };
    if let Some(failure) = failure {
        // The program exited or stalled: let the watcher read its last words
        // (su prints "Authentication failure" as it exits). What it said
        // decides; else the bootstrap's own failure, with what it said.
        let _ = child.start_kill();
        if tokio::time::timeout(Duration::from_secs(2), &mut watcher)
            .await
            .is_err()
        {
            watcher.abort();
        }
        let refusal = verdict.lock().unwrap_or_else(|p| p.into_inner()).refusal;
        return Err(match refusal {
            Some(refusal) => HopFailure::Refused(refusal),
            None => failure.with_output(tail(), false),
        });
    }
    let _ = booted_tx.send(true);
    let (reader, writer, hello) = handshake::run(
        FrameReader::new(r, DEFAULT_MAX_PAYLOAD),
        FrameWriter::new(w),
        &config,
    )
    .await
    .map_err(|e| HopFailure::from(e).with_output(tail(), false))?;
    Ok(StartedAgent {
        reader,
        writer,
        hello,
        process: Some(child),
        uploaded: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_runs_the_script_with_sh_as_the_target_user() {
        let sudo = argv(&Hop::Sudo { user: "app".into() }, "P:", "echo");
        assert_eq!(
            sudo,
            [
                "sudo", "-p", "P:", "-H", "-u", "app", "--", "/bin/sh", "-c", "echo"
            ]
        );
        let su = argv(&Hop::Su { user: "app".into() }, "P:", "echo");
        assert_eq!(su, ["su", "app", "-s", "/bin/sh", "-c", "echo"]);
        let doas = argv(&Hop::Doas { user: "app".into() }, "P:", "echo");
        assert_eq!(doas, ["doas", "-u", "app", "--", "/bin/sh", "-c", "echo"]);
    }
}
