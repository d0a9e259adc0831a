//! SIGINT, SIGTERM and SIGHUP go to the remote command's process group;
//! then the shim dies of the same signal, as OpenSSH's client does.
//! SIGWINCH becomes a window change for a pty session. The signals are
//! blocked in every thread and taken by one `sigwait`er, so no handler runs
//! in signal context.

use std::os::fd::AsFd;
use std::sync::Arc;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask, raise};
use proto::session::PtyRequest;

use crate::link::Shared;
use crate::{sys, terminal};

/// Start the signal thread for a session.
pub fn forward(shared: Arc<Shared>) {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        loop {
            let Ok(sig) = set.wait() else { return };
            if sig == Signal::SIGWINCH {
                if let Some((cols, rows)) = sys::window_size(std::io::stdin().as_fd()) {
                    let resize = shared.machine().resize(PtyRequest { cols, rows });
                    if let Some(control) = resize {
                        let _ = shared.outbox.control(&control);
                    }
                }
                continue;
            }
            let control = shared.machine().signal(sig as i32);
            let _ = shared.outbox.control(&control);
            terminal::restore();
            let _ = sys::default_disposition(sig);
            let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = raise(sig);
            std::process::exit(128 + sig as i32);
        }
    });
}
