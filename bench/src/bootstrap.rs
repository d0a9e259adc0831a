//! The agent bootstrap: the first command through a fresh cache (the agent
//! uploaded) and through a warm one, on loopback and at 50 ms RTT, against
//! one fresh OpenSSH `ssh h true`; and how many bytes the upload puts on the
//! wire (read from `-v`).

use std::process::Command;
use std::time::Instant;

use crate::harness::{Sshd, Stats, fakessh, me, ratio, run_cmd, samples};

/// `(rows, notes)` for the report.
pub fn run(sshd: &Sshd, cfg: &str, reps: usize) -> (Vec<String>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (alias, label) in [("direct", "loopback"), ("wan", "50 ms RTT")] {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..reps {
            let _ = std::fs::remove_dir_all(sshd.path("cache"));
            let start = Instant::now();
            run_cmd(fakessh(cfg, alias).args(["ssh", "h", "true"]));
            cold.push(start.elapsed().as_secs_f64());
            let start = Instant::now();
            run_cmd(fakessh(cfg, alias).args(["ssh", "h", "true"]));
            warm.push(start.elapsed().as_secs_f64());
        }
        let fresh = Stats::of(samples(&run_cmd(Command::new(me()).args([
            "time-loop",
            &reps.to_string(),
            "0",
            "ssh",
            "-F",
            cfg,
            alias,
            "true",
        ]))));
        let (cold, warm) = (Stats::of(cold), Stats::of(warm));
        rows.push(format!(
            "| start to first command's exit, {label}: cold (upload) / warm (cached) | {} / {} | {} (one `ssh h true`) | – | cold {}, warm {} |",
            cold.ms(),
            warm.ms(),
            fresh.ms(),
            ratio(cold.median, fresh.median),
            ratio(warm.median, fresh.median)
        ));
    }

    // Round trips of a warm first command, counted by the proxy: the
    // flights of client data that follow server data.
    // (The proxy counts a connection when both its directions closed.)
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
    settle();
    let _ = crate::proxy::take_flights();
    run_cmd(fakessh(cfg, "wan").args(["ssh", "h", "true"]));
    settle();
    let ours = crate::proxy::take_flights();
    run_cmd(Command::new("ssh").args(["-F", cfg, "wan", "true"]));
    settle();
    let theirs = crate::proxy::take_flights();
    rows.push(format!(
        "| round trips of a warm first command (client flights through the proxy) | {} | {} (one `ssh h true`) | – | target: at most OpenSSH's |",
        flights(&ours),
        flights(&theirs)
    ));

    // What goes over the wire, as the host reports it under -v.
    let _ = std::fs::remove_dir_all(sshd.path("cache"));
    let out = run_cmd(
        Command::new(crate::fakessh_bin())
            .args(["-v", "--ssh-config", cfg, "--to", "ssh:direct", "--"])
            .args(["ssh", "h", "true"]),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    match log.lines().find_map(upload_line) {
        Some((platform, wire, unpacked, gzip)) => rows.push(format!(
            "| agent upload for {platform}, bytes on the wire ({}) | {wire} ({:.2} MiB; {unpacked} unpacked) | – | – | ≤ 3 MiB |",
            if gzip { "gzip'd" } else { "raw" },
            wire as f64 / (1u64 << 20) as f64,
        )),
        None => notes.push(format!(
            "The upload size could not be read from -v; it printed:\n{log}"
        )),
    }
    (rows, notes)
}

/// One connection's flights, or what went wrong.
fn flights(counts: &[u32]) -> String {
    match counts {
        [one] => one.to_string(),
        other => format!("{other:?} (expected one connection)"),
    }
}

/// `uploading agent for PLATFORM (N bytes[ gzip'd], M bytes unpacked)`.
fn upload_line(line: &str) -> Option<(String, u64, u64, bool)> {
    let rest = &line[line.find("uploading agent for ")? + "uploading agent for ".len()..];
    let (platform, rest) = rest.split_once(" (")?;
    let (wire, rest) = rest.split_once(" bytes")?;
    let gzip = rest.starts_with(" gzip'd");
    let unpacked = rest.split(", ").nth(1)?.split_once(' ')?.0;
    Some((
        platform.to_string(),
        wire.parse().ok()?,
        unpacked.parse().ok()?,
        gzip,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_upload_line() {
        let line = "mitogen-fakessh: ssh:direct: uploading agent for Linux x86_64 (3049645 bytes gzip'd, 7341704 bytes unpacked)";
        assert_eq!(
            super::upload_line(line),
            Some(("Linux x86_64".into(), 3049645, 7341704, true))
        );
    }
}
