//! A loopback TCP forwarder that can stop forwarding (without closing
//! anything), to make a link go silently dead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct PausableProxy {
    pub port: u16,
    paused: Arc<AtomicBool>,
}

impl PausableProxy {
    pub fn start(upstream: u16) -> PausableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let p = p.clone();
                    std::thread::spawn(move || forward(from, to, &p));
                }
            }
        });
        PausableProxy { port, paused }
    }

    /// Stop forwarding: bytes are held, connections stay open.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }
}

fn forward(mut from: TcpStream, mut to: TcpStream, paused: &AtomicBool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while paused.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
