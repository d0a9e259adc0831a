//! A TCP forwarder on loopback that stands in for a long link: each
//! direction is delayed by half a round trip and, optionally, limited to a
//! bandwidth. It also counts each connection's round trips: the flights of
//! client data that follow server data (or begin the connection).
//!
//! The bandwidth cap is a bottleneck like a real link's: bytes leave it one
//! after another at the link's rate (a token bucket with no burst beyond one
//! chunk), and its queue holds about one bandwidth-delay product. While that
//! queue is full the proxy stops reading, so the sender's own socket fills
//! and it waits, as it would behind a full router queue (TCP would see drops
//! instead; this is the kinder, loss-free version). Without a cap, every
//! chunk is stamped when read and written once its time has come, in order;
//! what is in flight is then bounded only by `UNCAPPED_IN_FLIGHT`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// The client flights of every connection that ended, in order.
static FLIGHTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Bytes one direction may hold in its delay line without a cap (a
/// receiver that stops reading stops the sender once this much waits).
const UNCAPPED_IN_FLIGHT: usize = 256 << 20;

/// The most one read takes: a capped link paces whole chunks, so they stay
/// small against what the link moves in a millisecond at 1 Gbit/s.
const CHUNK: usize = 64 << 10;

/// Client flights of the connections that ended since the last call.
pub fn take_flights() -> Vec<u32> {
    std::mem::take(&mut *FLIGHTS.lock().unwrap())
}

/// The link the proxy stands in for.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub rtt: Duration,
    /// Bytes per second each way; `None`: as fast as loopback goes.
    pub rate: Option<u64>,
}

impl Link {
    /// A link of `rtt` and `mbit` Mbit/s each way (0: no cap).
    pub fn new(rtt: Duration, mbit: u64) -> Link {
        Link {
            rtt,
            rate: (mbit > 0).then_some(mbit * 1_000_000 / 8),
        }
    }

    /// The bottleneck's queue: one bandwidth-delay product (of the whole
    /// round trip), at least 64 KiB.
    fn bottleneck_queue(&self, rate: u64) -> u64 {
        ((rate as f64 * self.rtt.as_secs_f64()) as u64).max(64 << 10)
    }

    /// Bytes one direction may hold: its share of the round trip on the
    /// wire plus a full bottleneck queue, or `UNCAPPED_IN_FLIGHT`.
    fn in_flight(&self) -> usize {
        match self.rate {
            None => UNCAPPED_IN_FLIGHT,
            Some(rate) => {
                let wire = (rate as f64 * self.rtt.as_secs_f64() / 2.0) as u64;
                (wire + self.bottleneck_queue(rate) + CHUNK as u64) as usize
            }
        }
    }
}

/// Who spoke last on one connection, and how many client flights so far.
#[derive(Default)]
struct Turns {
    client_spoke_last: AtomicBool,
    client_flights: AtomicU32,
}

/// Listen on 127.0.0.1 (any port) and forward to `upstream` with `rtt`,
/// without a bandwidth cap. Returns the port; the proxy runs until the
/// runtime ends.
pub async fn start(upstream: u16, rtt: Duration) -> u16 {
    start_link(upstream, Link { rtt, rate: None }).await
}

/// Listen on 127.0.0.1 (any port) and forward to `upstream` over `link`.
pub async fn start_link(upstream: u16, link: Link) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let turns = Arc::new(Turns::default());
                let up = tokio::spawn(delayed(cr, sw, link, turns.clone(), true));
                let down = tokio::spawn(delayed(sr, cw, link, turns.clone(), false));
                let _ = tokio::join!(up, down);
                let flights = turns.client_flights.load(Ordering::Relaxed);
                FLIGHTS.lock().unwrap().push(flights);
            });
        }
    });
    port
}

/// When each chunk leaves the bottleneck: one after another at `rate`.
struct Bottleneck {
    rate: u64,
    queue: u64,
    /// When the last chunk accepted has left the bottleneck.
    free_at: Instant,
    /// Which way, for the timeline ([`crate::trace`]), and when it was
    /// last written to.
    way: &'static str,
    traced_at: Option<Instant>,
}

impl Bottleneck {
    /// Wait until the queue has room, then return when `len` bytes that
    /// enter now have left the bottleneck.
    async fn pass(&mut self, len: usize) -> Instant {
        let drain = Duration::from_secs_f64(self.queue as f64 / self.rate as f64);
        // The queue holds what has not left yet: (free_at - now) × rate.
        if let Some(room_at) = self.free_at.checked_sub(drain)
            && room_at > Instant::now()
        {
            tokio::time::sleep_until(room_at).await;
        }
        let now = Instant::now();
        let queued = self.free_at.saturating_duration_since(now);
        if queued > Duration::from_millis(5)
            && self
                .traced_at
                .is_none_or(|t| now - t >= Duration::from_millis(10))
        {
            self.traced_at = Some(now);
            crate::trace::line(
                "proxy",
                &format!("{} queue {:.1} ms", self.way, queued.as_secs_f64() * 1e3),
            );
        }
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(len as f64 / self.rate as f64);
        self.free_at
    }
}

async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    turns: Arc<Turns>,
    from_client: bool,
) {
    let delay = link.rtt / 2;
    // Bytes read but not yet written; the semaphore bounds them.
    let room = Arc::new(Semaphore::new(link.in_flight()));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer_room = room.clone();
    let writer = tokio::spawn(async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if data.is_empty() || to.write_all(&data).await.is_err() {
                break;
            }
            writer_room.add_permits(data.len());
        }
        let _ = to.shutdown().await;
    });
    let mut bottleneck = link.rate.map(|rate| Bottleneck {
        rate,
        queue: link.bottleneck_queue(rate),
        free_at: Instant::now(),
        way: if from_client { "up" } else { "down" },
        traced_at: None,
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n > 0 {
            let was_client = turns.client_spoke_last.swap(from_client, Ordering::Relaxed);
            if from_client && !was_client {
                turns.client_flights.fetch_add(1, Ordering::Relaxed);
            }
            match room.acquire_many(n as u32).await {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        let left = match bottleneck.as_mut() {
            Some(b) if n > 0 => b.pass(n).await,
            _ => Instant::now(),
        };
        let _ = tx.send((left + delay, buf[..n].to_vec()));
        if n == 0 {
            break;
        }
    }
    let _ = writer.await;
}
