//! A TCP forwarder on loopback that delays each direction by half a round
//! trip, without limiting bandwidth: every chunk is stamped when read and
//! written once its time has come, in order.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

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
                tokio::spawn(delayed(cr, sw, rtt / 2));
                tokio::spawn(delayed(sr, cw, rtt / 2));
            });
        }
    });
    port
}

async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
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
        let _ = tx.send((Instant::now() + delay, buf[..n].to_vec()));
        if n == 0 {
            break;
        }
    }
    let _ = writer.await;
}
