//! Running a command with a deadline, and what it did.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::needs::which;

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Panic with everything we know if the exit code is not `want`.
    pub fn expect_code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code(),
            want,
            "unexpected exit status\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
    /// Exit status `want`, and `needle` somewhere in stderr.
    pub fn expect_error(&self, want: i32, needle: &str) -> &Self {
        self.expect_code(want).expect_stderr(needle)
    }
    /// `needle` somewhere in stderr.
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        let err = self.stderr_text();
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
        self
    }
    pub fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr_text().contains("panicked"),
            "a process panicked:\n{}",
            self.stderr_text()
        );
        self
    }
}

/// Run `cmd` with `stdin` bytes and a deadline; a timeout kills it and fails.
pub fn run_with(mut cmd: Command, stdin: &[u8], deadline: Duration) -> Outcome {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {deadline:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Outcome {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// A command running `binary` (mitogen-fakessh) as a test runs it: the
/// user's ssh-agent hidden, so a test sees only the keys it configures, and
/// no controlling terminal (`setsid`), so that nothing ever waits for a
/// password typed on the developer's one.
pub fn fakessh_command(binary: &Path) -> Command {
    let mut cmd = match which("setsid") {
        Some(setsid) => {
            let mut c = Command::new(setsid);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.env_remove("SSH_AUTH_SOCK");
    cmd
}

/// `binary ARGS...` (see [`fakessh_command`]) with empty stdin and a 180 s
/// deadline.
pub fn run_fakessh(binary: &Path, args: &[&str]) -> Outcome {
    let mut cmd = fakessh_command(binary);
    cmd.args(args);
    run_with(cmd, b"", Duration::from_secs(180))
}
