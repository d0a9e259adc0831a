//! `-v` diagnostics, to stderr or the `-E` file.

use std::io::Write;
use std::sync::Mutex;

use crate::argv::SshInvocation;

pub struct Log {
    level: u8,
    file: Option<Mutex<std::fs::File>>,
}

impl Log {
    pub fn open(inv: &SshInvocation) -> Log {
        let file = inv.log_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(Mutex::new)
        });
        Log {
            level: if inv.quiet { 0 } else { inv.verbose },
            file,
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.level == 0 {
            return;
        }
        let line = format!("debug1: {msg}\n");
        match &self.file {
            Some(f) => {
                let _ = f.lock().map(|mut f| f.write_all(line.as_bytes()));
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}
