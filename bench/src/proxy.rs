//! A TCP forwarder on loopback that delays each direction by half a round
//! trip, without limiting bandwidth: every chunk is stamped when read and
//! written once its time has come, in order. It also counts each
//! connection's round trips: the flights of client data that follow server
//! data (or begin the connection).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The client flights of every connection that ended, in order.
static FLIGHTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Client flights of the connections that ended since the last call.
pub fn take_flights() -> Vec<u32> {
    std::mem::take(&mut *FLIGHTS.lock().unwrap())
}

/// Who spoke last on one connection, and how many client flights so far.
#[derive(Default)]
struct Turns {
    client_spoke_last: AtomicBool,
    client_flights: AtomicU32,
}

/// Listen on 127.0.0.1 (any port) and forward to `upstream` with `rtt`.
/// Returns the port; the proxy runs until the runtime ends.
pub async fn start(upstream: u16, rtt: Duration) -> u16 {
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
                let up = tokio::spawn(delayed(cr, sw, rtt / 2, turns.clone(), true));
                let down = tokio::spawn(delayed(sr, cw, rtt / 2, turns.clone(), false));
                let _ = tokio::join!(up, down);
                let flights = turns.client_flights.load(Ordering::Relaxed);
                FLIGHTS.lock().unwrap().push(flights);
            });
        }
    });
    port
}

async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    turns: Arc<Turns>,
    from_client: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if data.is_empty() || to.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n > 0 {
            let was_client = turns.client_spoke_last.swap(from_client, Ordering::Relaxed);
            if from_client && !was_client {
                turns.client_flights.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = tx.send((Instant::now() + delay, buf[..n].to_vec()));
        if n == 0 {
            break;
        }
    }
    let _ = writer.await;
}
