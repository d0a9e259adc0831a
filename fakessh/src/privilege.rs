//! Privilege hops: sudo, su and doas under the hybrid pty.
//!
//! The hop's program gets a fresh pty as its controlling terminal and its
//! stderr, so sudo's `requiretty` is satisfied and any password prompt
//! appears there, while stdin and stdout are a socketpair that carries the
//! bootstrap and then the frames, 8-bit clean. sudo is given a unique
//! prompt (`-p`) so a prompt is never confused with other output. The
//! password is written once; a second prompt means it was wrong, and the hop
//! fails at once instead of looping.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use router_core::connection::{FrameReader, FrameWriter};
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::{AgentConfig, ConnectFailure, HopKind, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::fdstream::FdStream;
use crate::hop::StartedAgent;
use crate::ssh::bootstrap;
use crate::sys;

/// Messages on the pty that end the attempt, and what to tell the user.
const FAILURES: &[(&str, &str)] = &[
    (
        "you must have a tty",
        "sudo refused: it demands a tty (requiretty) and did not get one",
    ),
    (
        "is not in the sudoers file",
        "not allowed to use sudo (not in the sudoers file)",
    ),
    (
        "is not allowed to execute",
        "sudo does not allow this user to run commands as the target user",
    ),
    ("a password is required", "a password is required"),
    ("incorrect password", "incorrect password"),
    ("authentication failure", "incorrect password"),
    ("sorry, try again", "incorrect password"),
    ("authentication failed", "incorrect password"),
    ("permission denied", "permission denied"),
    ("does not exist", "the target user does not exist"),
    ("unknown user", "the target user does not exist"),
    ("command not found", "the program is not installed"),
    ("no such file or directory", "the program is not installed"),
];

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

fn argv(kind: &HopKind, prompt: &str, script: &str) -> Vec<String> {
    let s = |v: &str| v.to_string();
    match kind {
        HopKind::Sudo { user } => vec![
            s("sudo"),
            s("-p"),
            s(prompt),
            s("-H"),
            s("-u"),
            user.clone(),
            s("--"),
            s("/bin/sh"),
            s("-c"),
            s(script),
        ],
        HopKind::Su { user } => vec![
            s("su"),
            user.clone(),
            s("-s"),
            s("/bin/sh"),
            s("-c"),
            s(script),
        ],
        HopKind::Doas { user } => {
            vec![
                s("doas"),
                s("-u"),
                user.clone(),
                s("--"),
                s("/bin/sh"),
                s("-c"),
                s(script),
            ]
        }
        HopKind::Local => unreachable!("local hops are not privilege hops"),
    }
}

/// What the pty watcher concluded before the agent came up.
#[derive(Default)]
struct PtyVerdict {
    failure: Option<ConnectFailure>,
    tail: Vec<String>,
}

/// Start `kind` from here, bootstrap our agent through it, handshake.
pub async fn start(
    kind: &HopKind,
    password: Option<&Secret>,
    config: AgentConfig,
) -> Result<StartedAgent, ConnectFailure> {
    let name = config.name.clone();
    let fail = |m: String| ConnectFailure::new(format!("{name}: {m}"));
    let image = bootstrap::agent_image().map_err(fail)?;
    let prompt = marker();
    let words = argv(kind, &prompt, &bootstrap::bootstrap_script(image, true));
    let pty =
        nix::pty::openpty(None, None).map_err(|e| fail(format!("cannot allocate a pty: {e}")))?;
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| fail(format!("socketpair: {e}")))?;
    let theirs_out: OwnedFd = theirs
        .try_clone()
        .map_err(|e| fail(format!("dup: {e}")))?
        .into();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..])
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::from(pty.slave))
        // English messages, so failures can be recognised.
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    sys::controlling_tty_on_stderr(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", words[0])))?;
    drop(cmd); // closes our copies of the slave and of the child's socket end

    let master = FdStream::new(pty.master).map_err(|e| fail(format!("pty: {e}")))?;
    // sudo and doas read the password from the tty; su's PAM conversation
    // prompts on stderr but reads the answer from stdin, i.e. our socket.
    let answer_on_stdin = match kind {
        HopKind::Su { .. } => Some(ours.try_clone().map_err(|e| fail(format!("dup: {e}")))?),
        _ => None,
    };
    let verdict = Arc::new(Mutex::new(PtyVerdict::default()));
    let (booted_tx, booted_rx) = watch::channel(false);
    let pid = child.id();
    let mut watcher = tokio::spawn(watch_pty(
        name.clone(),
        master,
        answer_on_stdin,
        prompt,
        password.cloned(),
        verdict.clone(),
        booted_rx,
        pid,
    ));

    ours.set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let stream = tokio::net::UnixStream::from_std(ours).map_err(|e| fail(e.to_string()))?;
    let (mut r, mut w) = stream.into_split();
    let booted = tokio::time::timeout(
        Duration::from_secs(90),
        bootstrap::run(&name, &mut r, &mut w, image),
    )
    .await;
    if !matches!(booted, Ok(Ok(_))) {
        // The program exited or stalled: let the watcher read its last words
        // (su prints "Authentication failure" as it exits).
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut watcher).await;
    }
    let verdict_failure = || {
        let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
        v.failure
            .clone()
            .map(|f| ConnectFailure {
                message: format!("{name}: {}", f.message),
                password_required: f.password_required,
            })
            .unwrap_or_else(|| ConnectFailure::new(String::new()))
    };
    let tail = || {
        let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
        if v.tail.is_empty() {
            String::new()
        } else {
            format!(" (it said: {})", v.tail.join(" | "))
        }
    };
    match booted {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let _ = child.start_kill();
            let f = verdict_failure();
            return Err(if f.message.is_empty() {
                ConnectFailure::new(format!("{e}{}", tail()))
            } else {
                f
            });
        }
        Err(_) => {
            let _ = child.start_kill();
            let f = verdict_failure();
            return Err(if f.message.is_empty() {
                ConnectFailure::new(format!("{name}: no answer within 90s{}", tail()))
            } else {
                f
            });
        }
    }
    let _ = booted_tx.send(true);
    let (reader, writer, hello) = crate::hop::handshake(
        &name,
        FrameReader::new(r, DEFAULT_MAX_PAYLOAD),
        FrameWriter::new(w),
        &config,
    )
    .await
    .map_err(|e| ConnectFailure::new(format!("{e}{}", tail())))?;
    Ok(StartedAgent {
        child,
        reader,
        writer,
        hello,
    })
}

/// Answer the password prompt once, recognise failures, then keep draining
/// the pty (the agent's stderr) into our log for the agent's lifetime.
#[allow(clippy::too_many_arguments)]
async fn watch_pty(
    name: String,
    mut master: FdStream,
    answer_on_stdin: Option<std::os::unix::net::UnixStream>,
    prompt: String,
    password: Option<Secret>,
    verdict: Arc<Mutex<PtyVerdict>>,
    booted: watch::Receiver<bool>,
    pid: Option<u32>,
) {
    let mut pending = String::new();
    let mut sent = false;
    let mut buf = [0u8; 4096];
    let kill = || {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    loop {
        let n = match master.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            // EOF, or EIO once every holder of the slave is gone: judge
            // what is left as a last line.
            _ => {
                if !*booted.borrow() && !pending.trim().is_empty() {
                    pending.push('\n');
                    judge_lines(&mut pending, &prompt, &verdict, sent);
                }
                break;
            }
        };
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(pw) = password.as_ref().filter(|p| !p.0.is_empty()) {
            // Never keep or print the password, should anything echo it.
            pending = pending.replace(&pw.0, "<password>");
        }
        if *booted.borrow() {
            // The agent runs: what arrives is its stderr.
            while let Some(pos) = pending.find('\n') {
                let line: String = pending.drain(..=pos).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if line.starts_with("mitogen-fakessh") {
                    crate::logging::stderr_line(line);
                } else if !line.is_empty() {
                    warn!("{name}: {line}");
                }
            }
            continue;
        }
        let lower = pending.to_ascii_lowercase();
        let is_prompt = pending.trim_end().ends_with(&prompt)
            || (!pending.contains(&prompt) && lower.trim_end().ends_with("password:"));
        if is_prompt {
            if sent {
                record(&verdict, "incorrect password", false);
                kill();
                break;
            }
            match &password {
                Some(pw) => {
                    debug!("{name}: answering the password prompt");
                    let mut answer = pw.0.clone().into_bytes();
                    answer.push(b'\n');
                    let written = match &answer_on_stdin {
                        Some(stdin) => {
                            use std::io::Write;
                            (&*stdin).write_all(&answer).is_ok()
                        }
                        None => master.write_all(&answer).await.is_ok(),
                    };
                    if !written {
                        break;
                    }
                    sent = true;
                    pending.clear();
                }
                None => {
                    record(
                        &verdict,
                        "a password is required; give --password-file or run from a terminal",
                        true,
                    );
                    kill();
                    break;
                }
            }
            continue;
        }
        if judge_lines(&mut pending, &prompt, &verdict, sent) {
            kill();
        }
    }
}

/// Look at complete lines for failures (kept with other noise for the
/// error message). Returns whether the attempt is over.
fn judge_lines(
    pending: &mut String,
    prompt: &str,
    verdict: &Mutex<PtyVerdict>,
    sent: bool,
) -> bool {
    let mut over = false;
    while let Some(pos) = pending.find('\n') {
        let line: String = pending.drain(..=pos).collect();
        let line = line.trim().replace(prompt, "");
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if let Some((_, why)) = FAILURES.iter().find(|(needle, _)| lower.contains(needle)) {
            record(verdict, why, false);
            over |= *why != "incorrect password" || sent;
        }
        push_tail(verdict, line);
    }
    over
}

fn record(verdict: &Mutex<PtyVerdict>, why: &str, password_required: bool) {
    let mut v = verdict.lock().unwrap_or_else(|p| p.into_inner());
    if v.failure.is_none() {
        v.failure = Some(ConnectFailure {
            message: why.to_string(),
            password_required,
        });
    }
}

fn push_tail(verdict: &Mutex<PtyVerdict>, line: String) {
    let mut v = verdict.lock().unwrap_or_else(|p| p.into_inner());
    if v.tail.len() == 5 {
        v.tail.remove(0);
    }
    v.tail.push(line);
}
