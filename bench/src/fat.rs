//! Long fat links (issue 28): one bulk stream through an ssh hop, and
//! through `ssh:…,sudo:root`, at 50 and 150 ms RTT, with a 1 Gbit/s cap and
//! without one. Each row sets mitogen-fakessh beside OpenSSH (a fresh
//! connection, and a ControlMaster) in the same run, and beside the cap:
//! the physical limit. `fakessh-bench fat` runs only these rows; they are
//! slow (a window-bound stream at 150 ms moves about 13 MiB/s).
//!
//! Ours is timed over the data phase (the host is connected first), like
//! the ControlMaster; a fresh OpenSSH pays its set-up inside its time,
//! which is what "fresh" means (a few round trips against tens of seconds).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::forward::forward_rates;
use crate::harness::{Master, Sshd, Stats, fakessh_through_with, me, run_cmd, write_random};
use crate::proxy::{self, Link};
use crate::readings::{cpu_between, probes_during, read_first, read_kib};

/// What `fakessh-bench fat` measures, from its command line.
pub struct Plan {
    pub rsync_mib: u64,
    pub forward_mib: u64,
    pub rtts_ms: Vec<u64>,
    pub caps_mbit: Vec<u64>,
    pub probes: usize,
    /// Also through `sudo:root` (`--no-sudo`: the plain chain only).
    pub sudo: bool,
    /// Also ours with one SSH channel (`--one-lane`: `--lanes 1`), to see
    /// what lanes change.
    pub one_lane: bool,
    /// Also behind a bastion on loopback (`--bastion`: `ssh:direct,ssh:wan`
    /// for us, `ProxyJump direct` for OpenSSH): only the second hop is long.
    pub bastion: bool,
    /// Only ours (`--ours-only`): no OpenSSH rows, for a quick look.
    pub ours_only: bool,
}

impl Plan {
    /// `[--quick] [--no-sudo] [--one-lane] [--bastion] [--ours-only] [--rsync-mib N] [--forward-mib N] [--rtt MS,...] [--cap MBIT,...]`
    /// (cap 0: none). Defaults: the rows.
    pub fn parse(args: &[String]) -> Result<Plan, String> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut plan = Plan {
            rsync_mib: if quick { 128 } else { 1024 },
            forward_mib: if quick { 64 } else { 256 },
            rtts_ms: vec![50, 150],
            caps_mbit: vec![1000, 0],
            probes: 10,
            sudo: true,
            one_lane: false,
            bastion: false,
            ours_only: false,
        };
        let list = |v: &str| -> Result<Vec<u64>, String> {
            v.split(',')
                .map(|x| x.parse().map_err(|_| format!("not a number: {x:?}")))
                .collect()
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || rest.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {}
                "--no-sudo" => plan.sudo = false,
                "--one-lane" => plan.one_lane = true,
                "--bastion" => plan.bastion = true,
                "--ours-only" => plan.ours_only = true,
                "--rsync-mib" => plan.rsync_mib = list(value()?)?.first().copied().unwrap_or(0),
                "--forward-mib" => plan.forward_mib = list(value()?)?.first().copied().unwrap_or(0),
                "--rtt" => plan.rtts_ms = list(value()?)?,
                "--cap" => plan.caps_mbit = list(value()?)?,
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        if plan.rsync_mib == 0 || plan.forward_mib == 0 || plan.rtts_ms.is_empty() {
            return Err("sizes must be above 0 and at least one RTT given".into());
        }
        Ok(plan)
    }
}

/// MiB/s of `mib` moved in `secs`.
fn rate(mib: u64, secs: f64) -> f64 {
    mib as f64 / secs
}

fn cell(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.1} MiB/s"))
        .unwrap_or_else(|| "–".into())
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// One row: ours, fresh, ControlMaster, the cap.
fn row(
    what: &str,
    ours: Option<f64>,
    fresh: Option<f64>,
    mux: Option<f64>,
    cap: Option<f64>,
) -> String {
    format!(
        "| {what} | {} | {} | {} | {} | {} / {} / {} |",
        cell(ours),
        cell(fresh),
        cell(mux),
        cell(cap),
        ratio(ours, fresh),
        ratio(ours, mux),
        ratio(ours, cap)
    )
}

/// What one host process measured for one chain: rsync push and pull,
/// `ssh h true` during each, and the peak RSS of host and agent.
struct Ours {
    push: Option<f64>,
    pull: Option<f64>,
    during_push: Option<Stats>,
    during_pull: Option<Stats>,
    /// A keystroke's echo through `ssh h cat`, during each.
    echo_push: Option<Stats>,
    echo_pull: Option<Stats>,
    host_kib: Option<u64>,
    agent_kib: Option<u64>,
    /// CPU seconds of (host, agent) over the push and over the pull.
    push_cpu: Option<(f64, f64)>,
    pull_cpu: Option<(f64, f64)>,
}

/// Push then pull under one host through `chain`, probing `ssh h true`
/// while each streams.
fn ours_rsync(
    cfg: &str,
    chain: &str,
    flags: &[&str],
    src: &Path,
    dir: &Path,
    probes: usize,
) -> Ours {
    let out = |name: &str| dir.join(name).display().to_string();
    let me = me().display().to_string();
    let push_dst = out("push-dst");
    let pull_dst = out("pull-dst");
    // One bulk transfer timed in the background, `ssh h true` probed
    // meanwhile (after a second, when it streams), then waited for.
    let timed_with_probes = |rsync: &str, times: &str, name: &str| {
        format!(
            "'{me}' time-loop 1 0 {rsync} > '{times}' &\n\
             bulk=$!\n\
             sleep 1\n\
             '{me}' time-loop {probes} 0 ssh h true > '{probe}.t'\n\
             '{me}' echo-loop {probes} ssh h cat > '{probe}.echo'\n\
             kill -0 $bulk 2>/dev/null && echo yes > '{probe}.still'\n\
             wait $bulk\n",
            probe = out(name),
        )
    };
    let script = format!(
        "ssh h true || exit 1\n\
         rm -rf '{push_dst}' '{pull_dst}'\n\
         {cpu} > '{cpu0}'\n\
         {push}\
         {cpu} > '{cpu1}'\n\
         {pull}\
         {cpu} > '{cpu2}'\n\
         grep VmHWM /proc/$PPID/status > '{host}'\n\
         ssh h 'grep VmHWM /proc/$PPID/status' > '{agent}'\n\
         rm -rf '{push_dst}' '{pull_dst}'\n",
        push = timed_with_probes(
            &format!("rsync -a --whole-file '{}' h:'{push_dst}/'", src.display()),
            &out("push.t"),
            "during-push"
        ),
        pull = timed_with_probes(
            &format!("rsync -a --whole-file h:'{}' '{pull_dst}/'", src.display()),
            &out("pull.t"),
            "during-pull"
        ),
        host = out("host.rss"),
        agent = out("agent.rss"),
        // utime and stime (clock ticks) of the host, then of the agent.
        cpu =
            "{ cut -d' ' -f14,15 /proc/$PPID/stat; ssh h 'cut -d\" \" -f14,15 /proc/$PPID/stat'; }",
        cpu0 = out("cpu0"),
        cpu1 = out("cpu1"),
        cpu2 = out("cpu2"),
    );
    for f in [
        "push.t",
        "during-push.t",
        "during-push.still",
        "during-push.echo",
        "during-pull.echo",
        "pull.t",
        "during-pull.t",
        "during-pull.still",
        "host.rss",
        "agent.rss",
        "cpu0",
        "cpu1",
        "cpu2",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    crate::trace::run_cmd(fakessh_through_with(cfg, chain, flags).args(["sh", "-c", &script]));
    Ours {
        push: read_first(&dir.join("push.t")),
        pull: read_first(&dir.join("pull.t")),
        during_push: probes_during(dir, "during-push", "t"),
        during_pull: probes_during(dir, "during-pull", "t"),
        echo_push: probes_during(dir, "during-push", "echo"),
        echo_pull: probes_during(dir, "during-pull", "echo"),
        host_kib: read_kib(&dir.join("host.rss")),
        agent_kib: read_kib(&dir.join("agent.rss")),
        push_cpu: cpu_between(&dir.join("cpu0"), &dir.join("cpu1")),
        pull_cpu: cpu_between(&dir.join("cpu1"), &dir.join("cpu2")),
    }
}

/// Seconds for OpenSSH's rsync with `ssh` as given (push, then pull).
fn openssh_rsync(ssh: &str, sudo: bool, src: &Path, dir: &Path) -> (Option<f64>, Option<f64>) {
    let mut times = [None, None];
    for (i, push) in [true, false].into_iter().enumerate() {
        let dst = dir.join(if push { "push-dst" } else { "pull-dst" });
        let _ = std::fs::remove_dir_all(&dst);
        let (from, to) = if push {
            (src.display().to_string(), format!("wan:{}/", dst.display()))
        } else {
            (
                format!("wan:{}", src.display()),
                format!("{}/", dst.display()),
            )
        };
        let mut cmd = Command::new("rsync");
        cmd.args(["-a", "--whole-file", "-e", ssh]);
        if sudo {
            cmd.arg("--rsync-path=sudo rsync");
        }
        let start = Instant::now();
        let ok = run_cmd(cmd.args([&from, &to])).status.success();
        times[i] = ok.then(|| start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&dst);
    }
    (times[0], times[1])
}

/// One way to the far side: our chain, and OpenSSH's way there.
#[derive(Clone, Copy)]
struct Route {
    chain: &'static str,
    sudo: bool,
    /// What the rows add to say which way.
    via: &'static str,
    /// OpenSSH's ProxyJump for the same way (its ControlMaster goes to
    /// `wan` alone, and is not compared then).
    jump: Option<&'static str>,
}

const ROUTES: [Route; 3] = [
    Route {
        chain: "ssh:wan",
        sudo: false,
        via: "",
        jump: None,
    },
    Route {
        chain: "ssh:wan,sudo:root",
        sudo: true,
        via: " through `sudo:root`",
        jump: None,
    },
    Route {
        chain: "ssh:direct,ssh:wan",
        sudo: false,
        via: " behind a loopback bastion (`ssh:direct,ssh:wan`; OpenSSH `-J direct`)",
        jump: Some("direct"),
    },
];

/// Every row of one link: plain chain, then through sudo:root.
fn link_rows(
    sshd: &Sshd,
    port: u16,
    link: Link,
    plan: &Plan,
    src: &Path,
    dir: &Path,
) -> Vec<String> {
    let cfg = crate::harness::write_config(sshd, port);
    let label = match link.rate {
        Some(r) => format!(
            "{} ms RTT, {} Mbit/s cap",
            link.rtt.as_millis(),
            r * 8 / 1_000_000
        ),
        None => format!("{} ms RTT, no cap", link.rtt.as_millis()),
    };
    let cap = link.rate.map(|r| r as f64 / (1 << 20) as f64);
    let mut rows = Vec::new();
    let master = Master::start(&cfg, "wan", dir);
    let fresh_ssh = format!("ssh -F {cfg} -o ControlMaster=no");
    let mux_ssh = format!("ssh -F {cfg} -o ControlPath={}", master.ctl);
    let mib = plan.rsync_mib;
    for Route {
        chain,
        sudo,
        via,
        jump,
    } in ROUTES
        .into_iter()
        .filter(|r| (plan.sudo || !r.sudo) && (plan.bastion || r.jump.is_none()))
    {
        eprintln!("fat: {label}{via}: rsync");
        let ours = ours_rsync(&cfg, chain, &[], src, dir, plan.probes);
        let fresh = match jump {
            _ if plan.ours_only => (None, None),
            Some(jump) => openssh_rsync(&format!("{fresh_ssh} -J {jump}"), sudo, src, dir),
            None => openssh_rsync(&fresh_ssh, sudo, src, dir),
        };
        let mux = match jump {
            Some(_) => (None, None),
            _ if plan.ours_only => (None, None),
            None => openssh_rsync(&mux_ssh, sudo, src, dir),
        };
        let r = |t: Option<f64>| t.map(|t| rate(mib, t));
        if plan.one_lane {
            eprintln!("fat: {label}{via}: rsync, one lane");
            let one = ours_rsync(&cfg, chain, &["--lanes", "1"], src, dir, plan.probes);
            for (what, ours, theirs) in [("push", one.push, fresh.0), ("pull", one.pull, fresh.1)] {
                rows.push(row(
                    &format!("rsync {mib} MiB {what} with one lane (`--lanes 1`), {label}{via}"),
                    r(ours),
                    r(theirs),
                    None,
                    cap,
                ));
            }
        }
        rows.push(row(
            &format!("rsync {mib} MiB push, {label}{via}"),
            r(ours.push),
            r(fresh.0),
            r(mux.0),
            cap,
        ));
        rows.push(row(
            &format!("rsync {mib} MiB pull, {label}{via}"),
            r(ours.pull),
            r(fresh.1),
            r(mux.1),
            cap,
        ));
        let during = |probe: Option<Stats>| {
            probe
                .map(|s| s.ms())
                .unwrap_or_else(|| "– (the transfer ended before the probes did)".into())
        };
        let kib = |k: Option<u64>| {
            k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "–".into())
        };
        rows.push(format!(
            "| `ssh h true` during that push / pull, {label}{via} | {} / {} | – | – | – | target ≤ RTT + 20 ms |",
            during(ours.during_push),
            during(ours.during_pull),
        ));
        rows.push(format!(
            "| a keystroke's echo through `ssh h cat` during that push / pull, {label}{via} | {} / {} | – | – | – | target ≤ RTT + 20 ms |",
            during(ours.echo_push),
            during(ours.echo_pull),
        ));
        let cpu = |c: Option<(f64, f64)>, wall: Option<f64>| match (c, wall) {
            (Some((h, a)), Some(w)) => format!("host {h:.1} s, agent {a:.1} s of {w:.1} s"),
            _ => "–".into(),
        };
        rows.push(format!(
            "| CPU time during that push / pull, {label}{via} | {} / {} | – | – | – | where the time went |",
            cpu(ours.push_cpu, ours.push),
            cpu(ours.pull_cpu, ours.pull),
        ));
        rows.push(format!(
            "| peak RSS over that push and pull, {label}{via}: host, {} | host {}, agent {} | – | – | – | target < 64 MiB each |",
            if sudo { "sudo agent" } else { "ssh agent" },
            kib(ours.host_kib),
            kib(ours.agent_kib),
        ));
        eprintln!("fat: {label}{via}: ssh -L");
        let [o, f, m] = forward_rates(
            &cfg,
            chain,
            sudo || plan.ours_only,
            jump,
            plan.forward_mib,
            &master.ctl,
        );
        rows.push(row(
            &format!(
                "`ssh -L` one connection × {} MiB, {label}{via}",
                plan.forward_mib
            ),
            o,
            f,
            m,
            cap,
        ));
    }
    drop(master);
    rows
}

/// The rows for every RTT and cap of `plan`; `ports` are the proxies
/// already listening, one per (rtt, cap) in the same order.
pub fn run(sshd: &Sshd, links: &[(u16, Link)], plan: &Plan) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    write_random(&src, plan.rsync_mib << 20);
    let mut rows = vec![
        "| measurement | mitogen-fakessh | OpenSSH fresh | OpenSSH ControlMaster | the link's cap | ratio (ours / fresh, / master, / cap) |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for &(port, link) in links {
        rows.extend(link_rows(sshd, port, link, plan, &src, tmp.path()));
        proxy::take_flights();
    }
    rows
}

/// The links of `plan`, each behind its own proxy.
pub async fn start_links(upstream: u16, plan: &Plan) -> Vec<(u16, Link)> {
    let mut links = Vec::new();
    for &rtt in &plan.rtts_ms {
        for &cap in &plan.caps_mbit {
            let link = Link::new(Duration::from_millis(rtt), cap);
            links.push((proxy::start_link(upstream, link).await, link));
        }
    }
    links
}
