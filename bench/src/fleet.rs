//! A fleet: N hostnames (`f1`…`fN`) served by one sshd through the delay
//! proxy (50 ms RTT), each its own context, at the same parallelism for
//! everyone: one mitogen-fakessh host process driving them all, Debian's
//! parallel-ssh (a fresh connection per step), and OpenSSH ControlMaster
//! (one master per hostname). Workloads: (a) one command on every host;
//! (b) five steps per host: ssh, scp, rsync, ssh, ssh. Also the host's
//! resident memory with all N hops up.

use std::process::Command;
use std::time::Instant;

use crate::harness::{Sshd, fakessh_bin, run_cmd};

/// Hostnames per run, and how many run at once.
const HOSTS: usize = 200;
const QUICK_HOSTS: usize = 50;
const PARALLEL: usize = 32;

struct Outcome {
    seconds: f64,
    ok: bool,
    stdout: String,
}

fn timed(cmd: &mut Command) -> Outcome {
    let start = Instant::now();
    let out = run_cmd(cmd);
    Outcome {
        seconds: start.elapsed().as_secs_f64(),
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// `(rows, notes)` for the report.
pub fn run(sshd: &Sshd, proxy_port: u16, quick: bool) -> (Vec<String>, Vec<String>) {
    let n = if quick { QUICK_HOSTS } else { HOSTS };
    let mut notes = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let block = |extra: &str| {
        format!(
            "Host f*\n  HostName 127.0.0.1\n  Port {proxy_port}\n  User root\n  IdentityFile {key}\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n{extra}",
            key = sshd.path("user_key").display(),
            kh = sshd.path("known_hosts").display(),
        )
    };
    let cfg = d.join("fleet_config");
    std::fs::write(&cfg, block("")).unwrap();
    std::fs::create_dir(d.join("cm")).unwrap();
    let cm_cfg = d.join("cm_config");
    std::fs::write(
        &cm_cfg,
        block(&format!(
            "  ControlMaster auto\n  ControlPath {}/%h\n  ControlPersist 600\n",
            d.join("cm").display()
        )),
    )
    .unwrap();
    let hosts: String = (1..=n).map(|i| format!("f{i}\n")).collect();
    std::fs::write(d.join("hosts"), hosts).unwrap();
    let payload = d.join("payload");
    crate::harness::write_random(&payload, 64 << 10);
    let dest = d.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let (cfg, cm_cfg) = (cfg.display().to_string(), cm_cfg.display().to_string());
    let (pay, dst) = (payload.display().to_string(), dest.display().to_string());

    // The per-host steps, for xargs: `$0` is the host number.
    let one = |ssh: &str| format!("seq 1 {n} | xargs -P {PARALLEL} -I{{}} {ssh} f{{}} true");
    let five = |ssh: &str, scp: &str, rsync_e: &str| {
        let steps = format!(
            "{ssh} f$0 true && {scp} -q {pay} f$0:{dst}/f$0.scp && rsync -a -e \"{rsync_e}\" {pay} f$0:{dst}/f$0.rsync && {ssh} f$0 true && {ssh} f$0 true"
        );
        format!("seq 1 {n} | xargs -P {PARALLEL} -I{{}} sh -c '{steps}' {{}}")
    };
    let ours = |script: &str| {
        let mut c = Command::new(fakessh_bin());
        c.args([
            "-q",
            "--config",
            "none",
            "--ssh-config",
            &cfg,
            "--host",
            "f*=ssh:%h",
            "--",
        ])
        .args(["sh", "-c", script]);
        c
    };
    let forget_agents = || {
        let _ = std::fs::remove_dir_all(sshd.path("cache"));
    };

    // mitogen-fakessh: cold agents (an empty cache), then warm.
    forget_agents();
    let ours_a_cold = timed(&mut ours(&one("ssh")));
    let ours_a_warm = timed(&mut ours(&one("ssh")));
    forget_agents();
    let ours_b_cold = timed(&mut ours(&five("ssh", "scp", "ssh")));
    let ours_b_warm = timed(&mut ours(&five("ssh", "scp", "ssh")));
    // The host's memory: one hop up, then all of them.
    let memory = timed(&mut ours(&format!(
        "rss() {{ sed -n \"s/^$1:[[:space:]]*\\([0-9]*\\) kB/\\1/p\" /proc/$PPID/status; }}; \
         ssh f1 true && echo one $(rss VmRSS) && {} && echo all $(rss VmRSS) $(rss VmHWM)",
        one("ssh")
    )));

    // parallel-ssh: a fresh connection for every step.
    let pssh = |tool: &str, args: &str| {
        format!(
            "{tool} -p {PARALLEL} -t 0 -h {}/hosts {args} > /dev/null",
            d.display()
        )
    };
    let pssh_a = timed(&mut sh(&pssh(
        "parallel-ssh",
        &format!("-x '-F {cfg}' true"),
    )));
    let pssh_b = timed(&mut sh(&[
        pssh("parallel-ssh", &format!("-x '-F {cfg}' true")),
        pssh("parallel-scp", &format!("-x '-F {cfg}' {pay} {dst}/pscp")),
        pssh(
            "parallel-rsync",
            &format!("-S '-F {cfg}' {pay} {dst}/prsync"),
        ),
        pssh("parallel-ssh", &format!("-x '-F {cfg}' true")),
        pssh("parallel-ssh", &format!("-x '-F {cfg}' true")),
    ]
    .join(" && ")));

    // ControlMaster: cold (no master yet), then warm (every master up).
    let cm_ssh = format!("ssh -F {cm_cfg}");
    let cm_scp = format!("scp -F {cm_cfg}");
    let cm_a_cold = timed(&mut sh(&one(&cm_ssh)));
    let cm_a_warm = timed(&mut sh(&one(&cm_ssh)));
    stop_masters(&cm_cfg, n);
    let cm_b_cold = timed(&mut sh(&five(&cm_ssh, &cm_scp, &cm_ssh)));
    let cm_b_warm = timed(&mut sh(&five(&cm_ssh, &cm_scp, &cm_ssh)));
    stop_masters(&cm_cfg, n);

    let all_ok = [
        &ours_a_cold,
        &ours_a_warm,
        &ours_b_cold,
        &ours_b_warm,
        &pssh_a,
        &pssh_b,
        &cm_a_cold,
        &cm_a_warm,
        &cm_b_cold,
        &cm_b_warm,
    ]
    .iter()
    .all(|o| o.ok);
    if !all_ok {
        notes.push(format!(
            "Fleet: not every run succeeded on all {n} hosts (see the warnings on stderr)."
        ));
    }
    let s = |o: &Outcome| {
        format!(
            "{:.2} s{}",
            o.seconds,
            if o.ok { "" } else { " (failures)" }
        )
    };
    let mut rows = vec![
        format!(
            "| fleet of {n} hostnames, {PARALLEL} at a time, 50 ms RTT: (a) one command on every host, cold / warm agents | {} / {} | {} (parallel-ssh) | {} / {} (cold / warm masters) | warm: {:.2}× / {:.2}× |",
            s(&ours_a_cold),
            s(&ours_a_warm),
            s(&pssh_a),
            s(&cm_a_cold),
            s(&cm_a_warm),
            ours_a_warm.seconds / pssh_a.seconds,
            ours_a_warm.seconds / cm_a_warm.seconds,
        ),
        format!(
            "| the same, (b) five steps per host (ssh, scp, rsync, ssh, ssh), cold / warm agents | {} / {} | {} (parallel-ssh, parallel-scp, parallel-rsync) | {} / {} | cold: {:.2}× / {:.2}×; target ≤ 0.25× / ≤ 0.5× |",
            s(&ours_b_cold),
            s(&ours_b_warm),
            s(&pssh_b),
            s(&cm_b_cold),
            s(&cm_b_warm),
            ours_b_cold.seconds / pssh_b.seconds,
            ours_b_cold.seconds / cm_b_cold.seconds,
        ),
    ];
    match memory_row(&memory.stdout, n) {
        Some(row) => rows.push(row),
        None => notes.push(format!(
            "Fleet: the host's memory could not be read: {:?}",
            memory.stdout
        )),
    }
    (rows, notes)
}

/// `one RSS` and `all RSS HWM` (KiB) as the memory script prints them.
fn memory_row(stdout: &str, n: usize) -> Option<String> {
    let field = |tag: &str, i: usize| -> Option<u64> {
        stdout
            .lines()
            .find(|l| l.starts_with(tag))?
            .split_whitespace()
            .nth(i)?
            .parse()
            .ok()
    };
    let (one, all, peak) = (field("one", 1)?, field("all", 1)?, field("all", 2)?);
    let per_hop = all.saturating_sub(one) as f64 / (n - 1) as f64;
    Some(format!(
        "| the host with {n} hops up: resident memory, peak, per hop beyond the first | {:.1} MiB, peak {:.1} MiB, {per_hop:.0} KiB per hop (one hop: {:.1} MiB) | – | – | target ≤ 256 KiB per hop |",
        all as f64 / 1024.0,
        peak as f64 / 1024.0,
        one as f64 / 1024.0,
    ))
}

/// Stop every ControlMaster of the fleet.
fn stop_masters(cm_cfg: &str, n: usize) {
    for i in 1..=n {
        let _ = Command::new("ssh")
            .args(["-F", cm_cfg, "-O", "exit", &format!("f{i}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_memory_lines() {
        let row = super::memory_row("one 9000\nall 29480 30000\n", 201).unwrap();
        assert!(row.contains("102 KiB per hop"), "{row}");
    }
}
