//! The agent bootstrap: the first command through a fresh cache (the agent
//! uploaded) and through a warm one, on loopback and at 50 ms RTT, against
//! one fresh OpenSSH `ssh h true`; and how many bytes the upload puts on the
//! wire (read from `-v`).

use std::process::Command;
use std::time::Instant;

use crate::{Sshd, Stats, fakessh, me, ratio, run_cmd, samples};

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
