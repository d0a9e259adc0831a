//! Helpers shared by the end-to-end tests: run the real binary with a
//! deadline (a hang is a failure, never a stuck CI), require real tools, and
//! build and compare file trees.
#![allow(dead_code)]

pub mod chroot;
pub mod netns;
pub mod proxy;
pub mod sshd;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mitogen-fakessh")
}

/// `tool` must be on PATH: a test never passes without the program it runs.
/// `./tests/run` installs every tool the tests use.
pub fn require(tool: &str) {
    assert!(
        which(tool).is_some(),
        "this test runs `{tool}`, which is not installed: run ./tests/run (as root), which installs it"
    );
}

/// We must be root (the tests that need it are `#[ignore]`d, so plain
/// `cargo test` does not run them; `./tests/run` does, as root).
pub fn require_root() {
    assert!(
        sshd::is_root(),
        "this test needs root: run ./tests/run as root"
    );
}

/// Local account `user` must exist (`.ci/accounts.sh` creates the test
/// accounts), and we must be root to use it.
pub fn require_account(user: &str) {
    require_root();
    let exists = Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        exists,
        "account {user} is missing: run ./tests/run as root (it runs .ci/accounts.sh)"
    );
}

/// The accounts of `.ci/accounts.sh`.
pub fn require_accounts() {
    for user in ["mfs-deploy", "mfs-webapp", "mfs-su"] {
        require_account(user);
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

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
    #[allow(dead_code)]
    pub fn expect_error(&self, want: i32, needle: &str) -> &Self {
        self.expect_code(want).expect_stderr(needle)
    }
    /// `needle` somewhere in stderr.
    #[allow(dead_code)]
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

/// `mitogen-fakessh ARGS...` with empty stdin and a 120 s deadline. The
/// user's ssh-agent is hidden so tests see only the keys they configure,
/// and the run has no controlling terminal (`setsid`), so that nothing ever
/// waits for a password typed on the developer's one.
pub fn fakessh(args: &[&str]) -> Outcome {
    let mut cmd = match which("setsid") {
        Some(setsid) => {
            let mut c = Command::new(setsid);
            c.arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    cmd.args(args).env_remove("SSH_AUTH_SOCK");
    run_with(cmd, b"", Duration::from_secs(180))
}

/// `mitogen-fakessh --to local -- sh -c SCRIPT`.
pub fn local_sh(script: &str) -> Outcome {
    fakessh(&["--to", "local", "--", "sh", "-c", script])
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for 200 MiB.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// File names that break naive quoting, all valid on Linux.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space",
    "single'quote",
    "double\"quote",
    "dollar$HOME",
    "back`tick`",
    "ünïcødé ✓",
    "new\nline",
    "-rf",
    "semi;colon&amp|pipe",
    "star*glob?",
];

/// A tree with nested directories, awkward names and a file of `big` bytes.
pub fn make_tree(root: &Path, big: usize) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    for (i, name) in AWKWARD_NAMES.iter().enumerate() {
        std::fs::write(root.join(name), format!("content of {name:?}\n")).unwrap();
        std::fs::create_dir_all(root.join("a").join(format!("dir {name}"))).unwrap();
        write_random_file(&root.join("a/b").join(name), 1000 + i * 4096, i as u64 + 7);
    }
    std::fs::write(root.join("a/b/c/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../with space", root.join("a/link")).unwrap();
    if big > 0 {
        write_random_file(&root.join("a/big.bin"), big, 42);
    }
}

/// Assert two trees hold the same names, kinds, symlink targets and bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut left = listing(a);
    let mut right = listing(b);
    left.sort();
    right.sort();
    let names_l: Vec<_> = left.iter().map(|(p, _)| p.clone()).collect();
    let names_r: Vec<_> = right.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names_l, names_r, "trees {a:?} and {b:?} differ in names");
    for ((p, kind), (_, kind2)) in left.iter().zip(right.iter()) {
        assert_eq!(kind, kind2, "{p:?} differs in kind");
        if kind == "file" {
            assert!(
                same_bytes(&a.join(p), &b.join(p)),
                "{p:?} differs in content"
            );
        }
    }
}

fn listing(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let p = rel.join(entry.file_name());
            let ft = entry.file_type().unwrap();
            let kind = if ft.is_symlink() {
                format!("link -> {:?}", std::fs::read_link(root.join(&p)).unwrap())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                "file".to_string()
            };
            out.push((p, kind));
        }
    }
    out
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        let mut got = 0;
        while got < n {
            let m = fb.read(&mut bb[got..n]).unwrap();
            if m == 0 {
                return false;
            }
            got += m;
        }
        if n == 0 {
            return fb.read(&mut bb[..1]).unwrap() == 0;
        }
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}
