//! What the long-link bench's scripts leave in files: times, CPU ticks
//! and peak RSS, read back.

use std::path::Path;

use crate::harness::Stats;

/// CPU seconds (user and system) of host and agent, each, between two
/// readings of `utime stime` lines (host first).
pub fn cpu_between(before: &Path, after: &Path) -> Option<(f64, f64)> {
    let ticks = |p: &Path| -> Option<Vec<u64>> {
        let text = std::fs::read_to_string(p).ok()?;
        let lines: Vec<u64> = text
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
            .collect();
        (lines.len() == 2).then_some(lines)
    };
    let (a, b) = (ticks(before)?, ticks(after)?);
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    let secs = |i: usize| b[i].saturating_sub(a[i]) as f64 / 100.0;
    Some((secs(0), secs(1)))
}

pub fn read_first(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.trim().parse().ok())
}

pub fn read_kib(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The probes of `name` in `name.EXT` (seconds each), if the bulk transfer
/// was still running when they ended: others were not taken during a bulk
/// stream.
pub fn probes_during(dir: &Path, name: &str, ext: &str) -> Option<Stats> {
    if !dir.join(format!("{name}.still")).exists() {
        return None;
    }
    let samples: Vec<f64> = std::fs::read_to_string(dir.join(format!("{name}.{ext}")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    (!samples.is_empty()).then(|| Stats::of(samples))
}
