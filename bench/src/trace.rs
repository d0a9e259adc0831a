//! `FAKESSH_BENCH_TRACE=FILE`: a timeline of a run, to see where a slow
//! probe or a slow ramp waited. Each line is the wall clock (seconds since
//! the epoch, to the microsecond), who wrote it and what: the host's own
//! stderr (set `MITOGEN_FAKESSH_LOG` for more of it), each timed call's
//! start and end, and the delay proxy's bottleneck queue while it holds
//! more than 5 ms. Every process of the run appends to the same file.

use std::io::{BufRead, Write};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const ENV: &str = "FAKESSH_BENCH_TRACE";

/// Whether this run keeps a timeline.
pub fn on() -> bool {
    std::env::var_os(ENV).is_some()
}

/// Append one stamped line, if the run keeps a timeline.
pub fn line(who: &str, text: &str) {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let text = format!("{:.6} {who} {text}\n", now.as_secs_f64());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line: the processes' lines do not interleave.
        let _ = file.write_all(text.as_bytes());
    }
}

/// Run `cmd` as [`crate::harness::run_cmd`] does; with a timeline, its
/// stderr goes there line by line as it comes, stamped.
pub fn run_cmd(cmd: &mut Command) -> Output {
    if !on() {
        return crate::harness::run_cmd(cmd);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            line("host", &l);
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = lines.join();
    if !out.status.success() {
        eprintln!(
            "warning: {cmd:?} exited {} (stderr in the timeline)",
            out.status
        );
    }
    out
}
