//! The local terminal while a remote pty session runs: raw mode, so keys
//! reach the remote side untouched, and the saved settings put back on
//! every way out (normal exit, error, death by signal).

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::Mutex;

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Put stdin's terminal in raw mode; false if stdin is not a terminal.
pub fn enter_raw() -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    let Ok(saved) = tcgetattr(stdin.as_fd()) else {
        return false;
    };
    let mut raw = saved.clone();
    cfmakeraw(&mut raw);
    if tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).is_err() {
        return false;
    }
    *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
    true
}

/// Put the terminal back as it was (idempotent).
pub fn restore() {
    if let Some(saved) = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &saved);
    }
}
