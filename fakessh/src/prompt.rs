//! Asking the user for a secret: on the controlling terminal without echo,
//! or through `SSH_ASKPASS`, chosen by OpenSSH's rules. Used only when a hop
//! needs a password or a key's passphrase and nothing else supplies it.

use std::io::{BufRead, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

/// Prompt on /dev/tty with echo off; `None` when there is no terminal.
pub fn ask_tty(prompt: &str) -> Option<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let saved = tcgetattr(tty.as_fd()).ok()?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet).ok()?;
    let mut out = &tty;
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &saved);
    let _ = writeln!(out);
    match read {
        Ok(n) if n > 0 => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        _ => None,
    }
}

/// Ask the way OpenSSH's `read_passphrase` does: `SSH_ASKPASS_REQUIRE=force`
/// always runs `SSH_ASKPASS`; `prefer` runs it when set; `never` only uses
/// the terminal; unset, the terminal first, then `SSH_ASKPASS` if a display
/// is there to show it. `None` when there is no way to ask.
pub fn ask_secret(prompt: &str) -> Option<String> {
    let askpass = std::env::var_os("SSH_ASKPASS").filter(|p| !p.is_empty());
    let require = std::env::var("SSH_ASKPASS_REQUIRE").unwrap_or_default();
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    match (require.as_str(), askpass) {
        ("force", Some(program)) => run_askpass(&program, prompt),
        ("force", None) => run_askpass("/usr/bin/ssh-askpass".as_ref(), prompt),
        ("prefer", Some(program)) => run_askpass(&program, prompt),
        ("never", _) | (_, None) => ask_tty(prompt),
        (_, Some(program)) => {
            ask_tty(prompt).or_else(|| has_display.then(|| run_askpass(&program, prompt))?)
        }
    }
}

/// Run an askpass program with the prompt as its argument; its stdout, up
/// to the first newline, is the answer, if it exits 0.
fn run_askpass(program: &std::ffi::OsStr, prompt: &str) -> Option<String> {
    let out = std::process::Command::new(program)
        .arg(prompt)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Some(text.lines().next().unwrap_or("").to_string())
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(
                "cannot run SSH_ASKPASS program {}: {e}",
                std::path::Path::new(program).display()
            );
            None
        }
    }
}
