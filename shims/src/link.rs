//! The session's link to the host, shared by its threads: the socket
//! frames go out on, the client end's state machine, and the stdin credit.

use std::io::{IoSlice, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard};

use router_core::frame::{Encoding, Frame, Header};
use router_core::message::{HOST_ID, handle};
use router_core::session::{self, ClientSession, SESSION_WINDOW, SendCredit, SessionControl};

/// Frames to the host, from any thread.
pub struct Outbox {
    sock: Mutex<UnixStream>,
}

pub fn header(handle: u32) -> Header {
    session::header(HOST_ID, HOST_ID, handle)
}

impl Outbox {
    pub fn send(&self, frame: &Frame) -> std::io::Result<()> {
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.write_all(&frame.header_bytes())?;
        sock.write_all(&frame.payload)
    }

    /// A raw-data frame straight from `data`, without copying it. Header
    /// and payload go in one `writev`, so the host wakes once per frame, not
    /// once for a lone header and again for its payload.
    pub fn send_data(&self, handle: u32, data: &[u8]) -> std::io::Result<()> {
        let head = Frame::encode_header(&header(handle), Encoding::Bytes, data.len());
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut head, mut data) = (&head[..], data);
        while !head.is_empty() {
            match sock.write_vectored(&[IoSlice::new(head), IoSlice::new(data)]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) if n < head.len() => head = &head[n..],
                Ok(n) => {
                    data = &data[n - head.len()..];
                    head = &[];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        sock.write_all(data)
    }

    pub fn control(&self, control: &SessionControl) -> std::io::Result<()> {
        self.send(&Frame::cbor(header(handle::SESSION_CONTROL), control))
    }
}

/// What the session's threads share.
pub struct Shared {
    pub outbox: Outbox,
    machine: Mutex<ClientSession>,
    /// Credit for our stdin, and its waiter.
    stdin_credit: Mutex<SendCredit>,
    credit_granted: Condvar,
}

impl Shared {
    /// The link over `sock`, for a session with (`pty`) or without a pty.
    pub fn new(sock: UnixStream, pty: bool) -> Shared {
        Shared {
            outbox: Outbox {
                sock: Mutex::new(sock),
            },
            machine: Mutex::new(ClientSession::local(pty)),
            stdin_credit: Mutex::new(SendCredit::new(SESSION_WINDOW)),
            credit_granted: Condvar::new(),
        }
    }

    /// Wake the stdin pump: credit was granted.
    pub fn credit_granted(&self) {
        self.credit_granted.notify_all();
    }

    pub fn machine(&self) -> MutexGuard<'_, ClientSession> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stdin_credit(&self) -> MutexGuard<'_, SendCredit> {
        self.stdin_credit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block until stdin may be sent; the most that may be read now.
    pub fn wait_for_credit(&self, max: usize) -> usize {
        let mut credit = self.stdin_credit();
        loop {
            let room = credit.sendable(max);
            if room > 0 {
                return room;
            }
            credit = self
                .credit_granted
                .wait(credit)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}
