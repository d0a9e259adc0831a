//! Asking for a password on the controlling terminal, without echo.
//! Used only when a hop asks for one and no --password-file was given.

use std::io::{BufRead, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use router_core::message::Secret;

/// Prompt on /dev/tty; `None` when there is no terminal to ask on.
pub fn ask(what: &str) -> Option<Secret> {
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
    let _ = write!(out, "[mitogen-fakessh] password for {what}: ");
    let _ = out.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &saved);
    let _ = writeln!(out);
    match read {
        Ok(n) if n > 0 => Some(Secret(line.trim_end_matches(['\n', '\r']).to_string())),
        _ => None,
    }
}
