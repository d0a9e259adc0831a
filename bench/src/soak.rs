//! The soak: many sessions through one ssh hop and then a sudo hop, with
//! the host's and both agents' resident memory and open descriptors read
//! along the way. After the first 100 sessions (the level) they must stay
//! within 1 MiB, and the descriptors must come back to exactly the level
//! whenever no session is open.

use std::process::Command;

use crate::harness::{Sshd, fakessh_bin};

/// One reading of one process.
#[derive(Clone, Debug)]
struct Reading {
    label: String,
    role: String,
    rss_kib: u64,
    /// Of it, anonymous memory (heap and stacks; the rest is the mapped
    /// executable and libraries).
    anon_kib: u64,
    fds: u64,
}

/// The script COMMAND runs: sequential sessions with readings every
/// `every`, then concurrent ones, then a last reading.
fn script(sequential: u32, every: u32, concurrent: u32) -> String {
    format!(
        r#"
host=$PPID
snap() {{
  for p in $host $(for d in /proc/[0-9]*; do
        [ "$(tr '\0' '\n' < $d/cmdline 2>/dev/null | tail -n 1)" = __agent ] && echo ${{d#/proc/}}
      done); do
    parent=$(awk '/^PPid/{{print $2}}' /proc/$p/status)
    if [ $p = $host ]; then role=host
    elif [ "$(cat /proc/$parent/comm 2>/dev/null)" = sudo ]; then role=sudo-agent
    else role=ssh-agent; fi
    echo "SNAP $1 $role $(awk '/^VmRSS/{{print $2}}' /proc/$p/status) $(ls /proc/$p/fd | wc -l) $(awk '/^RssAnon/{{print $2}}' /proc/$p/status)"
  done
}}
fail=0
i=0
while [ $i -lt {sequential} ]; do
  ssh h true || fail=$((fail+1))
  i=$((i+1))
  if [ $i = 100 ] || [ $((i % {every})) = 0 ]; then snap seq-$i; fi
done
echo "SEQFAIL $fail"
seq {concurrent} | xargs -P 64 -I{{}} sh -c 'ssh h true || echo CONCFAIL'
snap concurrent-{concurrent}
"#
    )
}

/// Run the soak; returns the table rows and a note per process.
pub fn run(sshd: &Sshd, cfg: &str, quick: bool) -> (Vec<String>, Vec<String>) {
    let (sequential, every, concurrent) = if quick {
        (1000, 250, 200)
    } else {
        (10_000, 1000, 1000)
    };
    let chain = "ssh:direct,sudo:root";
    let out = Command::new(fakessh_bin())
        .args(["-q", "--ssh-config", cfg, "--to", chain, "--", "sh", "-c"])
        .arg(script(sequential, every, concurrent))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the soak");
    let _ = sshd;
    let text = String::from_utf8_lossy(&out.stdout);
    let readings: Vec<Reading> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["SNAP", label, role, rss, fds, anon] => Some(Reading {
                    label: label.to_string(),
                    role: role.to_string(),
                    rss_kib: rss.parse().ok()?,
                    anon_kib: anon.parse().ok()?,
                    fds: fds.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect();
    let seq_fail: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("SEQFAIL ").and_then(|n| n.parse().ok()))
        .unwrap_or(sequential);
    let conc_fail = text.lines().filter(|l| *l == "CONCFAIL").count() as u32;
    let ok = sequential + concurrent - seq_fail - conc_fail;
    let mut rows = vec![format!(
        "| sessions through `{chain}`: {sequential} sequential, then {concurrent} concurrent (64 at a time) | {ok}/{} ok |",
        sequential + concurrent
    )];
    let mut notes = Vec::new();
    for role in ["host", "ssh-agent", "sudo-agent"] {
        let mine: Vec<&Reading> = readings.iter().filter(|r| r.role == role).collect();
        let (Some(level), Some(last)) = (mine.first(), mine.last()) else {
            rows.push(format!("| {role} | no readings (exit {}) |", out.status));
            continue;
        };
        let max_rss = mine.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        let fds_back = mine.iter().all(|r| r.fds == level.fds);
        rows.push(format!(
            "| {role}: RSS after 100 sessions → after the last; highest | {:.1} → {:.1} MiB ({:+} KiB); {:.1} MiB |",
            level.rss_kib as f64 / 1024.0,
            last.rss_kib as f64 / 1024.0,
            last.rss_kib as i64 - level.rss_kib as i64,
            max_rss as f64 / 1024.0,
        ));
        rows.push(format!(
            "| {role}: open descriptors after 100 sessions → at each reading | {} → {} ({}) |",
            level.fds,
            mine.iter()
                .map(|r| r.fds.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if fds_back {
                "back to the level each time"
            } else {
                "**not back to the level**"
            }
        ));
        notes.push(format!(
            "{role}: {}",
            mine.iter()
                .map(|r| format!(
                    "{} {} KiB ({} anon)/{} fds",
                    r.label, r.rss_kib, r.anon_kib, r.fds
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !out.status.success() {
        notes.push(format!(
            "the soak's command exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    (rows, notes)
}
