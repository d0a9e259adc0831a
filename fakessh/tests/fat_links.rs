//! Long fat links (issue 28), through a real sshd behind a delay line:
//! output windows grow with the path, and what arrives is byte-exact, also
//! when the consumer stalls once the window has grown, and through
//! `sudo:root`; pushes go round several SSH channels (lanes, asked for once
//! a push is held back by its window) with stdin's window grown,
//! byte-exact there and back, a lane held back mid-stream only delays it,
//! and a lane killed mid-stream fails the session with a message and
//! leaves a prefix, never a corruption. No timing is asserted: a round trip of 40 ms only makes the
//! window the limit, which is what lets it grow.

#![cfg(feature = "host")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

/// Chunks one direction of the delay line may hold (64 KiB each).
const LINE_CHUNKS: usize = 4096;

/// A loopback forwarder that delays each direction by `one_way`.
fn delay_line(upstream: u16, one_way: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (from, to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                delay(from, to, one_way);
            }
        }
    });
    port
}

fn delay(mut from: TcpStream, mut to: TcpStream, one_way: Duration) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(LINE_CHUNKS);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            if tx
                .send((Instant::now() + one_way, buf[..n].to_vec()))
                .is_err()
                || n == 0
            {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, data)) = rx.recv() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if data.is_empty() || to.write_all(&data).is_err() {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
        }
    });
}

/// sshd behind a 40 ms round trip, named `far` in its ssh_config.
fn far_sshd() -> Sshd {
    far_sshd_with("root", &[])
}

/// [`far_sshd`] with extra sshd options, logging in as `user`.
fn far_sshd_with(user: &str, options: &[&str]) -> Sshd {
    let sshd = Sshd::start_with(options);
    let port = delay_line(sshd.port, Duration::from_millis(20));
    let key_line = sshd
        .host_key_line()
        .replace(&format!(":{} ", sshd.port), &format!(":{port} "));
    std::fs::write(sshd.path("known_hosts"), key_line).unwrap();
    let cfg = sshd
        .config_block_for("far", user, "")
        .replace(&format!("Port {}", sshd.port), &format!("Port {port}"));
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    sshd
}

/// [`far_sshd`], also named `near` in its ssh_config without the delay
/// line: `ssh:near,ssh:far` reaches `far` through a tunnel from `near`'s
/// agent, and only that second hop is long.
fn near_and_far_sshd() -> Sshd {
    let sshd = far_sshd();
    let mut known = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    known.push('\n');
    known.push_str(&sshd.host_key_line());
    std::fs::write(sshd.path("known_hosts"), known).unwrap();
    let mut cfg = std::fs::read_to_string(sshd.ssh_config()).unwrap();
    cfg.push('\n');
    cfg.push_str(&sshd.config_block_for("near", "root", ""));
    std::fs::write(sshd.ssh_config(), cfg).unwrap();
    sshd
}

/// `sh -c SCRIPT` under a host reaching everything through `chain`, with
/// the delivery's window decisions logged.
fn run(sshd: &Sshd, chain: &str, script: &str) -> Outcome {
    run_with_flags(sshd, &[], chain, script)
}

/// [`run`] with more flags for the host.
fn run_with_flags(sshd: &Sshd, flags: &[&str], chain: &str, script: &str) -> Outcome {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["--ssh-config", &sshd.ssh_config(), "--to", chain])
        .args(flags)
        .arg("--")
        .args(["sh", "-c", script])
        .env(
            "MITOGEN_FAKESSH_LOG",
            "warn,router::client_end=debug,fakessh::hop::ssh::lanes=info",
        )
        .env_remove("SSH_AUTH_SOCK");
    run_with(cmd, b"", Duration::from_secs(300))
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const MIB: usize = 1 << 20;

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_pull_over_a_long_link_grows_its_window_and_arrives_byte_exact_without_lanes() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 96 * MIB, 28);
    let copy = sshd.path("copy.bin");
    let out = run(
        &sshd,
        "ssh:far",
        // Through a pipe, which the shim hands over to the host: the
        // host's own window grows (output into a file stays the shim's,
        // and keeps 2 MiB).
        &format!("ssh h cat '{}' | cat > '{}'", src.display(), copy.display()),
    );
    out.expect_code(0);
    assert_eq!(
        sha256(&copy),
        sha256(&src),
        "the pulled copy differs: {}",
        out.stderr_text()
    );
    let grown = format!("Stdout window {} -> ", 2 * MIB);
    assert!(
        out.stderr_text().contains(&grown),
        "the window never grew from 2 MiB: {}",
        out.stderr_text()
    );
    // A pull never asks for lanes: no push was held back.
    assert!(
        !out.stderr_text().contains("lane"),
        "a pull got lanes: {}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_consumer_that_stalls_after_the_window_grew_loses_nothing() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 128 * MIB, 29);
    let (first, rest) = (sshd.path("first"), sshd.path("rest"));
    // 64 MiB read at once (the window grows meanwhile), then nothing for
    // three seconds while the grown window fills the host's queues, then
    // the rest.
    let script = format!(
        "ssh h cat '{src}' | {{ dd bs=1M count=64 iflag=fullblock of='{first}' 2>/dev/null; sleep 3; cat > '{rest}'; }}",
        src = src.display(),
        first = first.display(),
        rest = rest.display(),
    );
    let out = run(&sshd, "ssh:far", &script);
    out.expect_code(0);
    let joined = sshd.path("joined");
    let both = [
        std::fs::read(&first).unwrap(),
        std::fs::read(&rest).unwrap(),
    ]
    .concat();
    std::fs::write(&joined, both).unwrap();
    assert_eq!(
        sha256(&joined),
        sha256(&src),
        "bytes were lost or reordered"
    );
    assert!(
        out.stderr_text().contains("Stdout window"),
        "the window never grew: {}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root, sshd and sudo (run ./tests/run)"]
fn a_pull_through_sudo_over_a_long_link_arrives_byte_exact() {
    require_sshd();
    let _alone = lanes_alone();
    require("sudo");
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 64 * MIB, 30);
    let copy = sshd.path("copy.bin");
    let out = run(
        &sshd,
        "ssh:far,sudo:root",
        &format!(
            "rsync --whole-file h:'{}' '{}' && ssh h 'id -un'",
            src.display(),
            copy.display()
        ),
    );
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "root\n");
    assert_eq!(
        sha256(&copy),
        sha256(&src),
        "the pulled copy differs: {}",
        out.stderr_text()
    );
}

/// A push of `src` into `copy` on the far side that pauses for 2 s after
/// its first 8 MiB, running `during` in the pause: lanes are asked for once
/// a push is held back by its window, and the pause lets them join (and be
/// seen) before the push ends.
fn paused_push(src: &std::path::Path, copy: &std::path::Path, during: &str) -> String {
    format!(
        "{{ head -c 8M '{src}'; sleep 2; {during}
           tail -c +8388609 '{src}'; }} | ssh h 'cat > {copy}'",
        src = src.display(),
        copy = copy.display(),
    )
}

/// Held by each test that makes lanes, or reaches a long hop (whose agent
/// makes the lanes' directory at once): the lane killer below must find
/// only its own test's lanes among the machine's processes, and the
/// gibibyte test only its own directory.
static LANES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lanes_alone() -> std::sync::MutexGuard<'static, ()> {
    LANES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The remote `cat`s that carry lanes: their stdout is one of the agent's
/// FIFOs.
fn lane_cats() -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let out = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap_or_default();
        if out.to_string_lossy().contains("mitogen-fakessh-lanes-") {
            pids.push(pid);
        }
    }
    pids
}

/// Lane number `k`'s remote `cat`, `after` the lanes are up (at least 7 of
/// them, within a minute); `None` if there is no such lane by then.
fn lane_cat_after(k: usize, after: Duration) -> Option<nix::unistd::Pid> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lane_cats().len() < 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    lane_cats()
        .get(k)
        .map(|pid| nix::unistd::Pid::from_raw(*pid))
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_gibibyte_pushed_round_the_lanes_and_pulled_back_is_byte_exact() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 1024 * MIB, 31);
    let (there, back) = (sshd.path("there.bin"), sshd.path("back.bin"));
    let out = run(
        &sshd,
        "ssh:far",
        // From a pipe, which the shim hands over: the host reads stdin
        // itself and grows its window. (Back into a file: a pipeline's
        // status would be the last command's, not ssh's.)
        &format!(
            "cat '{src}' | ssh h 'cat > {there}' && {count} > '{joined}' && \
             ssh h cat '{there}' > '{back}'",
            src = src.display(),
            there = there.display(),
            back = back.display(),
            count = LANE_DIRS,
            joined = sshd.path("joined").display(),
        ),
    );
    out.expect_code(0);
    let log = out.stderr_text();
    assert!(
        log.contains("12 lanes toward the agent, through its socket"),
        "no lanes joined: {log}"
    );
    // Gone once joined, while the agent runs on.
    let joined = std::fs::read_to_string(sshd.path("joined")).unwrap();
    assert_eq!(
        joined.trim(),
        "0",
        "a lanes directory is left after the join"
    );
    assert!(
        log.contains("stdin window"),
        "stdin's window never grew: {log}"
    );
    let want = sha256(&src);
    assert_eq!(sha256(&there), want, "the pushed copy differs");
    assert_eq!(sha256(&back), want, "the copy pulled back differs");
    // The lanes' FIFOs and their directory are gone once joined.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("mitogen-fakessh-lanes-")
        })
        .collect();
    assert!(left.is_empty(), "lane directories left: {left:?}");
}

#[test]
#[ignore = "needs root, sshd and sudo (run ./tests/run)"]
fn an_rsync_push_through_sudo_round_the_lanes_arrives_byte_exact() {
    require_sshd();
    require("sudo");
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 256 * MIB, 32);
    let copy = sshd.path("copy.bin");
    let out = run(
        &sshd,
        "ssh:far,sudo:root",
        &format!(
            "rsync --whole-file '{}' h:'{}' && ssh h stat -c %U '{}'",
            src.display(),
            copy.display(),
            copy.display()
        ),
    );
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "root\n");
    assert!(
        out.stderr_text().contains("lanes toward the agent"),
        "no lanes joined: {}",
        out.stderr_text()
    );
    assert_eq!(sha256(&copy), sha256(&src), "the pushed copy differs");
}

/// A shell command: how many lanes' directories there are in `/tmp` (the
/// agents' `TMPDIR`).
const LANE_DIRS: &str = "ls -d /tmp/mitogen-fakessh-lanes-* 2>/dev/null | wc -l";

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_long_hop_that_never_pushes_keeps_its_lanes_directory_only_half_a_minute() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let (early, late) = (sshd.path("early"), sshd.path("late"));
    // Made once the round trip is timed (a moment after the first
    // session: waited for, 10 s at most), gone 30 s later.
    let script = format!(
        "ssh h true || exit 1
         i=0
         while [ \"$({LANE_DIRS})\" = 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
         {LANE_DIRS} > '{early}'
         sleep 35
         {LANE_DIRS} > '{late}'",
        early = early.display(),
        late = late.display(),
    );
    let out = run(&sshd, "ssh:far", &script);
    out.expect_code(0);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(read(&early), "1", "no lanes directory was made ahead");
    assert_eq!(
        read(&late),
        "0",
        "the lanes directory outlived its half minute: {}",
        out.stderr_text()
    );
    assert!(!out.stderr_text().contains("lanes toward"));
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_long_hop_behind_a_short_one_gets_lanes_and_a_push_and_pull_through_it_are_byte_exact() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = near_and_far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 256 * MIB, 38);
    let (there, back) = (sshd.path("there.bin"), sshd.path("back.bin"));
    let out = run(
        &sshd,
        "ssh:near,ssh:far",
        &format!(
            "cat '{src}' | ssh h 'cat > {there}' && ssh h cat '{there}' > '{back}'",
            src = src.display(),
            there = there.display(),
            back = back.display(),
        ),
    );
    out.expect_code(0);
    let log = out.stderr_text();
    // The second hop's channels go inside the first hop's tunnel. (The
    // first hop's round trip is loopback's: whether it gets lanes is a
    // matter of timing, not asserted.)
    assert!(
        log.contains("ssh:near,ssh:far: 12 lanes toward the agent, through its socket"),
        "the far hop got no lanes: {log}"
    );
    let want = sha256(&src);
    assert_eq!(sha256(&there), want, "the pushed copy differs");
    assert_eq!(sha256(&back), want, "the copy pulled back differs");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_lane_killed_mid_push_fails_the_session_and_leaves_only_a_prefix() {
    require_sshd();
    let _alone = lanes_alone();
    // Lanes through `cat`, which the test can kill: a server that forbids
    // connections to Unix sockets.
    let sshd = far_sshd_with("root", &["AllowStreamLocalForwarding=no"]);
    let src = sshd.path("src.bin");
    write_random_file(&src, 1024 * MIB, 33);
    let copy = sshd.path("copy.bin");
    // Once the lanes are up and the push has run a while, kill one lane's
    // `cat` on the far side.
    let killer = std::thread::spawn(|| {
        let Some(victim) = lane_cat_after(3, Duration::from_millis(1500)) else {
            return false;
        };
        nix::sys::signal::kill(victim, nix::sys::signal::SIGKILL).is_ok()
    });
    let out = run(
        &sshd,
        "ssh:far",
        &format!("cat '{}' | ssh h 'cat > {}'", src.display(), copy.display()),
    );
    assert!(killer.join().unwrap(), "no lane was running to kill");
    assert_ne!(out.status.code(), Some(0), "the session hid the lost lane");
    let log = out.stderr_text();
    assert!(
        log.lines().any(|l| l.starts_with("ssh: ")),
        "no message for the lost lane: {log}"
    );
    let (got, want) = (std::fs::read(&copy).unwrap(), std::fs::read(&src).unwrap());
    assert!(got.len() < want.len(), "all of it arrived before the kill");
    assert!(
        want.starts_with(&got),
        "the copy is not a prefix of the source"
    );
    eprintln!(
        "lost lane: {} of {} bytes arrived; {log}",
        got.len(),
        want.len()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_lane_held_back_mid_push_delays_the_stream_and_loses_nothing() {
    require_sshd();
    let _alone = lanes_alone();
    // Lanes through `cat`, which the test can stop: one lane's traffic is
    // then held back for two seconds while the others have room.
    let sshd = far_sshd_with("root", &["AllowStreamLocalForwarding=no"]);
    let src = sshd.path("src.bin");
    write_random_file(&src, 256 * MIB, 36);
    let copy = sshd.path("copy.bin");
    let copy_seen = copy.clone();
    // How much had arrived when the lane was let go again.
    let stopper = std::thread::spawn(move || {
        let victim = lane_cat_after(5, Duration::from_millis(300))?;
        nix::sys::signal::kill(victim, nix::sys::signal::SIGSTOP).ok()?;
        std::thread::sleep(Duration::from_secs(2));
        let arrived = std::fs::metadata(&copy_seen).map(|m| m.len()).ok();
        let _ = nix::sys::signal::kill(victim, nix::sys::signal::SIGCONT);
        arrived
    });
    let out = run(
        &sshd,
        "ssh:far",
        &format!("cat '{}' | ssh h 'cat > {}'", src.display(), copy.display()),
    );
    let arrived = stopper
        .join()
        .unwrap()
        .expect("no lane was running to stop");
    assert!(
        arrived < 256 * MIB as u64,
        "the push was over before the lane was let go"
    );
    out.expect_code(0);
    let log = out.stderr_text();
    assert!(
        log.contains("lanes toward the agent, through cat"),
        "no lanes through cat: {log}"
    );
    assert_eq!(sha256(&copy), sha256(&src), "the pushed copy differs");
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn lanes_are_refused_where_another_account_could_swap_their_fifos() {
    require_sshd();
    let _alone = lanes_alone();
    // A TMPDIR that another account owns and anyone may write to, without
    // the sticky bit: that account could move our FIFOs' directory away
    // and put its own in its place.
    let shared = tempfile::Builder::new()
        .prefix("mfs-shared-tmp-")
        .tempdir_in("/tmp")
        .unwrap();
    let attacker = uid_of("mfs-attacker");
    std::os::unix::fs::chown(shared.path(), Some(attacker), Some(attacker)).unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // For another account than root: sshd's `Match User root` has a SetEnv
    // of its own, which would win.
    let setenv = format!("SetEnv=TMPDIR={}", shared.path().display());
    let sshd = far_sshd_with("mfs-deploy", &[&setenv]);
    let src = sshd.path("src.bin");
    write_random_file(&src, 32 * MIB, 34);
    let drop_box = tempfile::Builder::new()
        .prefix("mfs-lanes-copy-")
        .tempdir()
        .unwrap();
    let deploy = uid_of("mfs-deploy");
    std::os::unix::fs::chown(drop_box.path(), Some(deploy), Some(deploy)).unwrap();
    let copy = drop_box.path().join("copy.bin");
    let out = run(&sshd, "ssh:far", &paused_push(&src, &copy, ""));
    out.expect_code(0);
    let log = out.stderr_text();
    assert!(
        log.contains("one lane toward the agent") && log.contains("not a safe place"),
        "lanes were not refused: {log}"
    );
    let made: Vec<_> = std::fs::read_dir(shared.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(
        made.is_empty(),
        "something was made in the shared place: {made:?}"
    );
    assert_eq!(sha256(&copy), sha256(&src), "the pushed copy differs");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn lanes_take_the_number_asked_for_and_one_means_one_channel() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    let src = sshd.path("src.bin");
    write_random_file(&src, 32 * MIB, 35);
    for (flag, lanes) in [("3", 3), ("1", 1)] {
        let copy = sshd.path(&format!("copy-{flag}.bin"));
        // Count the connections to the agent's lanes socket on the far
        // side during the pause (the name stays on them once removed).
        let count = format!(
            "ss -xH state established | grep -c 'mitogen-fakessh-lanes-.*/lanes.sock' > '{}'",
            sshd.path("count").display()
        );
        let script = paused_push(&src, &copy, &count);
        let out = run_with_flags(&sshd, &["--lanes", flag], "ssh:far", &script);
        out.expect_code(0);
        let log = out.stderr_text();
        let connected: usize = std::fs::read_to_string(sshd.path("count"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(connected, lanes - 1, "--lanes {flag}: {log}");
        match lanes {
            1 => assert!(!log.contains("lanes toward"), "{log}"),
            n => assert!(
                log.contains(&format!("{n} lanes toward the agent")),
                "{log}"
            ),
        }
        assert_eq!(
            sha256(&copy),
            sha256(&src),
            "--lanes {flag}: the copy differs"
        );
    }
    let out = run_with_flags(&sshd, &["--lanes", "13"], "ssh:far", "true");
    // A usage error, as ssh's: 255.
    assert_eq!(out.status.code(), Some(255), "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("--lanes"),
        "{}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_server_allowing_fewer_sessions_gets_fewer_lanes_and_the_push_is_byte_exact() {
    require_sshd();
    let _alone = lanes_alone();
    // sshd refuses sessions past 4 on a connection (the first channel and
    // three lanes through `cat`), and connections to Unix sockets: a
    // connection is no session, and would not be limited.
    let sshd = far_sshd_with("root", &["MaxSessions=4", "AllowStreamLocalForwarding=no"]);
    let src = sshd.path("src.bin");
    write_random_file(&src, 128 * MIB, 36);
    let copy = sshd.path("copy.bin");
    let out = run(&sshd, "ssh:far", &paused_push(&src, &copy, ""));
    out.expect_code(0);
    let log = out.stderr_text();
    assert!(
        log.contains("4 lanes toward the agent, through cat"),
        "{log}"
    );
    assert_eq!(sha256(&copy), sha256(&src), "the pushed copy differs");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn an_echo_both_ways_through_a_forward_round_the_lanes_comes_back_whole() {
    require_sshd();
    let _alone = lanes_alone();
    let sshd = far_sshd();
    // An echo server on the far side (this machine, past the delay line).
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut back = conn.try_clone().unwrap();
                let mut conn = conn;
                let _ = std::io::copy(&mut conn, &mut back);
            });
        }
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ready, done) = (sshd.path("ready"), sshd.path("done"));
    let script = format!(
        "ssh -f -N -L {port}:127.0.0.1:{echo_port} h && touch '{ready}' && \
         while [ ! -e '{done}' ]; do sleep 0.1; done",
        ready = ready.display(),
        done = done.display(),
    );
    let host = {
        let sshd_config = sshd.ssh_config();
        std::thread::spawn(move || {
            let mut cmd = std::process::Command::new(bin());
            cmd.args(["--ssh-config", &sshd_config, "--to", "ssh:far", "--"])
                .args(["sh", "-c", &script])
                .env("MITOGEN_FAKESSH_LOG", "warn,fakessh::hop::ssh::lanes=info")
                .env_remove("SSH_AUTH_SOCK");
            run_with(cmd, b"", Duration::from_secs(300))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the forward never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // 64 MiB written while it is read back: a push that wants lanes, with
    // a pull of the same size at once.
    let len = 64 * MIB;
    let src = sshd.path("echo.bin");
    write_random_file(&src, len, 37);
    let data = std::fs::read(&src).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sent = data.clone();
    let pump = std::thread::spawn(move || writer.write_all(&sent).is_ok());
    let mut back = vec![0u8; len];
    let got = sock.read_exact(&mut back);
    std::fs::write(&done, "").unwrap();
    let out = host.join().unwrap();
    got.unwrap_or_else(|e| panic!("the echo stopped: {e}; {}", out.stderr_text()));
    assert!(pump.join().unwrap(), "the writer failed");
    assert!(back == data, "the echo came back different");
    assert!(
        out.stderr_text().contains("lanes toward the agent"),
        "no lanes joined: {}",
        out.stderr_text()
    );
}
