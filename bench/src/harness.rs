//! What every benchmark uses: our sshd on loopback, timing loops and their
//! statistics, the binaries under test, ControlMasters, the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `time-loop N WARMUP CMD...`: run CMD WARMUP times untimed, then N times,
/// printing each run's seconds; exits non-zero if any timed run failed.
pub fn time_loop(args: &[String]) -> i32 {
    let n: usize = args[0].parse().unwrap();
    let warmup: usize = args[1].parse().unwrap();
    let cmd = &args[2..];
    let run = || {
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    for _ in 0..warmup {
        run();
    }
    let mut failed = 0;
    let what = cmd.join(" ");
    for _ in 0..n {
        let start = Instant::now();
        crate::trace::line("call", &format!("start {what}"));
        if !run() {
            failed += 1;
        }
        let took = start.elapsed().as_secs_f64();
        crate::trace::line("call", &format!("end {:.1} ms {what}", took * 1e3));
        println!("{took:.6}");
    }
    i32::from(failed > 0)
}

/// `echo-loop N CMD...`: start CMD (an echo on the far side, `ssh h cat`)
/// once, then time N one-byte round trips through it, 50 ms apart: a
/// keystroke and its echo. Prints each one's seconds; exits non-zero if an
/// echo did not come back.
pub fn echo_loop(args: &[String]) -> i32 {
    use std::io::{Read, Write};
    let n: usize = args[0].parse().unwrap();
    let cmd = &args[1..];
    let Ok(mut child) = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        return 1;
    };
    let (Some(mut keys), Some(mut echo)) = (child.stdin.take(), child.stdout.take()) else {
        return 1;
    };
    let mut failed = false;
    // The first goes with the session's start: not timed.
    for i in 0..=n {
        let start = Instant::now();
        let mut byte = [b'k'];
        let round = keys
            .write_all(&byte)
            .and_then(|_| keys.flush())
            .and_then(|_| echo.read_exact(&mut byte));
        if round.is_err() {
            failed = true;
            break;
        }
        if i > 0 {
            println!("{:.6}", start.elapsed().as_secs_f64());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(keys);
    let _ = child.wait();
    i32::from(failed)
}

pub use test_kit::workspace;

/// `mitogen-fakessh -q --config none --ssh-config CFG --to CHAIN --`, to
/// which the command is added.
pub fn fakessh_through(cfg: &str, chain: &str) -> Command {
    fakessh_through_with(cfg, chain, &[])
}

/// [`fakessh_through`] with more of the host's flags.
pub fn fakessh_through_with(cfg: &str, chain: &str, flags: &[&str]) -> Command {
    let mut cmd = Command::new(fakessh_bin());
    cmd.args(["-q", "--config", "none", "--ssh-config", cfg, "--to", chain])
        .args(flags)
        .arg("--");
    cmd
}

pub fn fakessh_bin() -> PathBuf {
    let release = workspace().join("target/release/mitogen-fakessh");
    assert!(release.exists(), "build first: cargo build --release");
    static_agent();
    release
}

/// The static agent the host uploads (`./build-agents`); without it the
/// host would upload itself and the numbers would not be the users'.
pub fn static_agent() -> PathBuf {
    test_kit::static_agent(std::env::consts::ARCH)
}

pub fn me() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// Our own sshd on loopback (the tests' own, from test-kit).
pub use test_kit::sshd::Sshd;

/// The bench's sshd: the tests' one, taking up to 300 connections at once
/// (the fleet rows open many).
pub fn start_sshd() -> Sshd {
    Sshd::start_with(&["MaxStartups 300"])
}

/// An ssh_config for the bench's sshd with `direct` (loopback) and `wan`
/// (through the proxy on `proxy_port`); its path.
pub fn write_config(sshd: &Sshd, proxy_port: u16) -> String {
    std::fs::write(
        sshd.path("known_hosts"),
        format!(
            "{}{}",
            sshd.known_hosts_line(sshd.port),
            sshd.known_hosts_line(proxy_port)
        ),
    )
    .unwrap();
    let cfg = sshd.path("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host direct\n  Port {}\nHost wan\n  Port {proxy_port}\nHost *\n  HostName 127.0.0.1\n  User root\n  \
             IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  IdentitiesOnly yes\n",
            sshd.port,
            sshd.path("user_key").display(),
            sshd.path("known_hosts").display()
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

/// Median and range of samples, in the unit given by `scale`.
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty(), "no samples");
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Stats {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        }
    }

    pub fn ms(&self) -> String {
        format!(
            "{:.1} ms ({:.1}–{:.1}, n={})",
            self.median * 1e3,
            self.min * 1e3,
            self.max * 1e3,
            self.n
        )
    }

    pub fn s(&self) -> String {
        format!(
            "{:.2} s ({:.2}–{:.2}, n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

pub fn samples(output: &std::process::Output) -> Vec<f64> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

pub fn run_cmd(cmd: &mut Command) -> std::process::Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    if !out.status.success() {
        eprintln!(
            "warning: {cmd:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn fakessh(cfg: &str, alias: &str) -> Command {
    let mut c = Command::new(fakessh_bin());
    c.args([
        "-q",
        "--ssh-config",
        cfg,
        "--to",
        &format!("ssh:{alias}"),
        "--",
    ]);
    c
}

/// A ControlMaster for `alias`; dropped = stopped.
pub struct Master {
    pub cfg: String,
    pub alias: String,
    pub ctl: String,
}

impl Master {
    pub fn start(cfg: &str, alias: &str, dir: &Path) -> Master {
        let ctl = dir.join(format!("ctl-{alias}")).display().to_string();
        let st = Command::new("ssh")
            .args([
                "-F",
                cfg,
                "-o",
                "ControlMaster=yes",
                "-o",
                &format!("ControlPath={ctl}"),
                "-fN",
                alias,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "ControlMaster did not start");
        Master {
            cfg: cfg.into(),
            alias: alias.into(),
            ctl,
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args([
                "-F",
                &self.cfg,
                "-o",
                &format!("ControlPath={}", self.ctl),
                "-O",
                "exit",
                &self.alias,
            ])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|_| "not found".into())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = version("uname", "-r");
    format!(
        "{cores} cores ({cpu}), {} GiB RAM, Linux {kernel}",
        mem / (1 << 20)
    )
}

/// One shell word, single-quoted.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

pub fn ratio(ours: f64, theirs: f64) -> String {
    format!("{:.2}×", ours / theirs)
}

/// Incompressible data, fast to generate.
pub fn write_random(path: &Path, len: u64) {
    let len = usize::try_from(len).expect("a file this machine can address");
    test_kit::write_random_file(path, len, 0x2545F4914F6CDD1D);
}

/// Every program the rows compare with or drive, found before anything
/// runs: a missing one would otherwise show as a failed row, not a cause.
pub fn require_tools() {
    let tools = [
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("scp", "openssh-client"),
        ("/usr/sbin/sshd", "openssh-server"),
        ("rsync", "rsync"),
        ("parallel-ssh", "pssh"),
        ("parallel-scp", "pssh"),
        ("parallel-rsync", "pssh"),
    ];
    let found = |tool: &str| {
        tool.starts_with('/') && Path::new(tool).exists() || test_kit::which(tool).is_some()
    };
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !found(tool))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let mut packages = missing.clone();
        packages.dedup();
        eprintln!(
            "fakessh-bench: missing programs; install them with: apt-get install -y {}",
            packages.join(" ")
        );
        std::process::exit(1);
    }
}
