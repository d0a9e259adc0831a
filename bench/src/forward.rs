//! `ssh -L` through mitogen-fakessh against OpenSSH's own `-L`, on
//! loopback and at 50 ms RTT: throughput of one connection (256 MiB to a
//! sink that acknowledges the last byte) and the latency of a fresh
//! connection's first round trip (connect, one byte there and back).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Stats, fakessh_through, run_cmd};

/// A service on this machine's loopback: `sink` reads a length and that
/// many bytes, then answers one byte; anything else echoes one byte.
pub fn service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    port
}

fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut kind = [0u8; 1];
    if conn.read_exact(&mut kind).is_err() {
        return;
    }
    if kind[0] == b's' {
        let mut len = [0u8; 8];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut left = u64::from_be_bytes(len);
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            match conn.read(&mut buf[..(left.min(1 << 20)) as usize]) {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n as u64,
            }
        }
    }
    let _ = conn.write_all(b"k");
}

/// Seconds to push `len` bytes through `port` and hear they all arrived.
pub fn throughput(port: u16, len: u64) -> Option<f64> {
    let start = Instant::now();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.write_all(b"s").ok()?;
    conn.write_all(&len.to_be_bytes()).ok()?;
    let block = vec![0x5au8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        conn.write_all(&block[..n]).ok()?;
        left -= n as u64;
    }
    let mut ack = [0u8; 1];
    conn.read_exact(&mut ack).ok()?;
    Some(start.elapsed().as_secs_f64())
}

/// Seconds for a fresh connection's first round trip through `port`.
fn first_round_trip(port: u16) -> Option<f64> {
    let start = Instant::now();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = conn.set_nodelay(true);
    conn.write_all(b"e").ok()?;
    let mut ack = [0u8; 1];
    conn.read_exact(&mut ack).ok()?;
    Some(start.elapsed().as_secs_f64())
}

/// Wait until `port` accepts connections (the forward is up).
pub fn wait_for(port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if first_round_trip(port).is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The rows: throughput and first-round-trip latency, ours against
/// OpenSSH's, for each of loopback and 50 ms RTT.
pub fn run(cfg: &str, quick: bool) -> (Vec<String>, Vec<String>) {
    let target = service();
    let len: u64 = if quick { 64 << 20 } else { 256 << 20 };
    let (reps, trips) = if quick { (2, 10) } else { (3, 30) };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (alias, label) in [("direct", "loopback"), ("wan", "50 ms RTT")] {
        let ours_port = free_port();
        let theirs_port = free_port();
        let spec = |port: u16| format!("{port}:127.0.0.1:{target}");
        let mut ours: Child = fakessh_through(cfg, &format!("ssh:{alias}"))
            .args(["ssh", "-N", "-L", &spec(ours_port), "h"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut theirs: Child = Command::new("ssh")
            .args([
                "-F",
                cfg,
                "-N",
                "-o",
                "ControlMaster=no",
                "-L",
                &spec(theirs_port),
                alias,
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let measured = (|| {
            if !wait_for(ours_port) || !wait_for(theirs_port) {
                return None;
            }
            let measure = |port: u16| -> Option<(Stats, Stats)> {
                let rates: Option<Vec<f64>> = (0..reps)
                    .map(|_| throughput(port, len).map(|s| len as f64 / s / (1 << 20) as f64))
                    .collect();
                let trips: Option<Vec<f64>> = (0..trips).map(|_| first_round_trip(port)).collect();
                Some((Stats::of(rates?), Stats::of(trips?)))
            };
            Some((measure(ours_port)?, measure(theirs_port)?))
        })();
        let _ = ours.kill();
        let _ = ours.wait();
        let _ = theirs.kill();
        let _ = theirs.wait();
        match measured {
            Some(((our_rate, our_trip), (their_rate, their_trip))) => {
                rows.push(format!(
                    "| `ssh -L`, {label}: one connection × {} MiB (throughput) | {:.0} MiB/s | {:.0} MiB/s | – | {:.2}× |",
                    len >> 20,
                    our_rate.median,
                    their_rate.median,
                    our_rate.median / their_rate.median
                ));
                rows.push(format!(
                    "| `ssh -L`, {label}: a fresh connection's first round trip | {} | {} | – | {:.2}× |",
                    our_trip.ms(),
                    their_trip.ms(),
                    our_trip.median / their_trip.median
                ));
            }
            None => notes.push(format!(
                "`ssh -L` at {label}: a forward did not come up or failed"
            )),
        }
    }
    (rows, notes)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// MiB/s of one connection × `mib` through a forward on `port`.
fn forward_rate(port: u16, mib: u64) -> Option<f64> {
    if !wait_for(port) {
        return None;
    }
    throughput(port, mib << 20).map(|s| mib as f64 / s)
}

/// `ssh -L` through `chain` (ours), and OpenSSH's fresh (through `jump`
/// if any) and through a ControlMaster (plain chains only: sudo has
/// nothing to do with -L there).
pub fn forward_rates(
    cfg: &str,
    chain: &str,
    sudo: bool,
    jump: Option<&str>,
    mib: u64,
    ctl: &str,
) -> [Option<f64>; 3] {
    let target = service();
    let spec = |port: u16| format!("{port}:127.0.0.1:{target}");
    let port = free_port();
    let ours = fakessh_through(cfg, chain)
        .args(["ssh", "-N", "-L", &spec(port), "h"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let got_ours = forward_rate(port, mib);
    stop(ours);
    if sudo {
        return [got_ours, None, None];
    }
    let port = free_port();
    let fresh = Command::new("ssh")
        .args(["-F", cfg, "-N", "-o", "ControlMaster=no"])
        .args(jump.map(|j| ["-J", j]).into_iter().flatten())
        .args(["-L", &spec(port), "wan"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let got_fresh = forward_rate(port, mib);
    stop(fresh);
    if jump.is_some() {
        return [got_ours, got_fresh, None];
    }
    let port = free_port();
    let control = format!("ControlPath={ctl}");
    let forwarded = run_cmd(Command::new("ssh").args([
        "-F",
        cfg,
        "-o",
        &control,
        "-O",
        "forward",
        "-L",
        &spec(port),
        "wan",
    ]))
    .status
    .success();
    let got_mux = forwarded.then(|| forward_rate(port, mib)).flatten();
    let _ = Command::new("ssh")
        .args([
            "-F",
            cfg,
            "-o",
            &control,
            "-O",
            "cancel",
            "-L",
            &spec(port),
            "wan",
        ])
        .stderr(Stdio::null())
        .status();
    [got_ours, got_fresh, got_mux]
}
