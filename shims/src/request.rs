//! The session request an ssh command line amounts to: the command (or
//! subsystem, or login shell), whether it gets a pty, the environment it
//! asks to send, and the client's own connection options.

use std::os::fd::AsFd;

use proto::session::{PtyRequest, RemoteCommand, SessionRequest};
use ssh_config::HostConfig;

use crate::argv::SshInvocation;
use crate::error::ShimError;
use crate::log::Log;
use crate::out::say;
use crate::sys;

/// The request for `inv`, whose destination resolved to `cfg`.
pub fn build(
    inv: &SshInvocation,
    cfg: &HostConfig,
    log: &Log,
) -> Result<SessionRequest, ShimError> {
    let mut command = inv.command_line();
    if let Some(rc) = cfg
        .remote_command
        .as_ref()
        .filter(|_| inv.command.is_empty())
    {
        command = rc.clone().into_bytes();
    }
    let command = if inv.subsystem {
        if command.is_empty() {
            return Err(ShimError::NoSubsystem);
        }
        RemoteCommand::Subsystem(String::from_utf8_lossy(&command).into_owned())
    } else if command.is_empty() {
        RemoteCommand::Shell
    } else {
        RemoteCommand::Exec(command)
    };
    let pty = pty_wanted(inv, cfg, log);
    let mut env = requested_env(cfg);
    if let Some(term) = std::env::var("TERM").ok().filter(|_| pty.is_some()) {
        env.push(("TERM".into(), term));
    }
    Ok(SessionRequest {
        host: inv.host.clone(),
        user: inv.user.clone(),
        port: inv.port,
        command,
        env,
        pty,
        ssh_options: connection_options(inv),
        ssh_config_file: inv.config_file.as_deref().map(absolute),
        forward_agent: false,
    })
}

/// OpenSSH's RequestTTY rules: `-T` never; `-tt` always; `-t` (or no
/// command, for a login shell) when stdin is a terminal. The size comes from
/// our own terminal, else 80x24.
fn pty_wanted(inv: &SshInvocation, cfg: &HostConfig, log: &Log) -> Option<PtyRequest> {
    use std::io::IsTerminal;
    let stdin_tty = std::io::stdin().is_terminal() && !inv.stdin_null;
    let mode = cfg.request_tty.as_deref().map(str::to_ascii_lowercase);
    let want = if inv.no_tty || mode.as_deref() == Some("no") {
        false
    } else if inv.tty_force >= 2 || mode.as_deref() == Some("force") {
        true
    } else if inv.tty_force == 1 || mode.as_deref() == Some("yes") {
        if !stdin_tty {
            say!("Pseudo-terminal will not be allocated because stdin is not a terminal.");
        }
        stdin_tty
    } else {
        inv.command.is_empty() && !inv.subsystem && stdin_tty
    };
    if !want {
        return None;
    }
    let (cols, rows) = sys::window_size(std::io::stdin().as_fd())
        .or_else(|| sys::window_size(std::io::stdout().as_fd()))
        .unwrap_or((80, 24));
    log.debug(&format!("requesting a {cols}x{rows} pty"));
    Some(PtyRequest { cols, rows })
}

/// A path the client named, made absolute from our directory: the host
/// resolves paths from its own. `~/...` and `none` stay as they are.
fn absolute(path: &str) -> String {
    if path.starts_with('/') || path.starts_with('~') || path == "none" {
        return path.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path).display().to_string(),
        Err(_) => path.to_string(),
    }
}

/// The `-o` options for the host's on-demand connection, IdentityFile
/// paths made [`absolute`].
fn connection_options(inv: &SshInvocation) -> Vec<(String, String)> {
    inv.options
        .iter()
        .map(
            |(key, value)| match key.eq_ignore_ascii_case("IdentityFile") {
                true => (key.clone(), absolute(value)),
                false => (key.clone(), value.clone()),
            },
        )
        .collect()
}

/// `SetEnv` pairs, then the variables of our environment that `SendEnv`
/// patterns name, from the command line and the configuration alike. The
/// agent applies its own accept-list, as sshd's AcceptEnv does.
fn requested_env(cfg: &HostConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in &cfg.set_env {
        if !out.iter().any(|(n, _)| n == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in std::env::vars() {
        if cfg.send_env.iter().any(|p| glob_match(p, &k)) && !out.iter().any(|(n, _)| *n == k) {
            out.push((k, v));
        }
    }
    out
}

/// ssh_config pattern matching: `*` and `?`.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("GIT_PROTOCOL", "GIT_PROTOCOL"));
        assert!(!glob_match("LC_*", "LANG"));
        assert!(glob_match("?ANG", "LANG"));
    }
}
