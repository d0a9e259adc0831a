//! The session's link to the host, shared by its threads: the socket
//! frames go out on, and the client end's state machine, which holds the
//! stdin credit the stdin thread waits for.

use std::io::{IoSlice, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard};

use proto::frame::{Encoding, Frame, Header};
use proto::message::{HOST_ID, handle};
use proto::session::{self, ClientSession, SessionControl};

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
    /// Wakes the stdin thread when the machine changed (credit came).
    machine_changed: Condvar,
}

impl Shared {
    /// The link over `sock`, for a session with (`pty`) or without a pty.
    pub fn new(sock: UnixStream, pty: bool) -> Shared {
        Shared {
            outbox: Outbox {
                sock: Mutex::new(sock),
            },
            machine: Mutex::new(ClientSession::local(pty)),
            machine_changed: Condvar::new(),
        }
    }

    /// Wake the stdin thread: the machine took a message (credit, or the
    /// session's end).
    pub fn machine_changed(&self) {
        self.machine_changed.notify_all();
    }

    pub fn machine(&self) -> MutexGuard<'_, ClientSession> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block until stdin may be sent; the most that may be read now, or 0
    /// once stdin will never be sendable again.
    pub fn wait_for_credit(&self, max: usize) -> usize {
        let mut machine = self.machine();
        loop {
            let room = machine.stdin_sendable(max);
            if room > 0 || machine.stdin_over() {
                return room;
            }
            machine = self
                .machine_changed
                .wait(machine)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}
