//! One session from the shim's side: a fresh socketpair handed to the host,
//! the request, then the client end of the session protocol
//! ([`ClientSession`]) driven over it.
//!
//! Deliberately synchronous: one thread reads stdin under the credit the
//! agent grants, the main thread writes stdout and stderr and grants credit
//! back once the bytes are written, a third takes signals. Exit only comes
//! after all output.

use std::io::{IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::BytesMut;
use nix::poll::PollFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Encoding, Frame, Header};
use router_core::message::{HOST_ID, handle};
use router_core::session::{
    self, ClientAction, ClientSession, DATA_CHUNK, Ending, ExitStatus, OutputStream,
    SESSION_WINDOW, SendCredit, SessionControl, SessionRequest, ToClient,
};

use crate::control::Control;
use crate::error::ShimError;
use crate::log::Log;
use crate::stdio::{self, Handover, StdinSource};
use crate::{signals, sys};

/// Frames to the host, from any thread.
pub struct Outbox {
    sock: Mutex<UnixStream>,
}

fn header(handle: u32) -> Header {
    session::header(HOST_ID, HOST_ID, handle)
}

impl Outbox {
    fn send(&self, frame: &Frame) -> std::io::Result<()> {
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.write_all(&frame.header_bytes())?;
        sock.write_all(&frame.payload)
    }

    /// A raw-data frame straight from `data`, without copying it. Header
    /// and payload go in one `writev`, so the host wakes once per frame, not
    /// once for a lone header and again for its payload.
    fn send_data(&self, handle: u32, data: &[u8]) -> std::io::Result<()> {
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
    pub fn machine(&self) -> MutexGuard<'_, ClientSession> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stdin_credit(&self) -> MutexGuard<'_, SendCredit> {
        self.stdin_credit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block until stdin may be sent; the most that may be read now.
    fn wait_for_credit(&self, max: usize) -> usize {
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

pub struct Session {
    shared: Arc<Shared>,
    reader: UnixStream,
}

impl Session {
    /// Hand a fresh socket to the host and send the request on it.
    pub fn open(
        request: &SessionRequest,
        handover: Handover,
        log: &Log,
    ) -> Result<Session, ShimError> {
        let control = Control::find()?;
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(ShimError::SocketPair)?;
        control.pass_session(&theirs, handover)?;
        drop(theirs);
        handover.let_go();
        log.debug(&format!("session socket handed to the host ({handover:?})"));
        let sock = UnixStream::from(mine);
        let reader = sock.try_clone().map_err(ShimError::Dup)?;
        let shared = Arc::new(Shared {
            outbox: Outbox {
                sock: Mutex::new(sock),
            },
            machine: Mutex::new(ClientSession::local(request.pty.is_some())),
            stdin_credit: Mutex::new(SendCredit::new(SESSION_WINDOW)),
            credit_granted: Condvar::new(),
        });
        shared
            .outbox
            .send(&Frame::cbor(header(handle::SESSION_OPEN), request))
            .map_err(ShimError::Request)?;
        Ok(Session { shared, reader })
    }

    /// Serve the session; returns the exit status.
    pub fn run(self, stdin: StdinSource, log: &Log) -> i32 {
        signals::forward(self.shared.clone());
        match stdin {
            StdinSource::Null => {
                if let Some(eof) = self.shared.machine().stdin_eof() {
                    let _ = self.shared.outbox.control(&eof);
                }
            }
            StdinSource::Pumped => {
                let shared = self.shared.clone();
                std::thread::spawn(move || pump_stdin(&shared));
            }
            StdinSource::HandedOver => {}
        }
        let mut buf = BytesMut::with_capacity(256 << 10);
        loop {
            loop {
                let frame = match Frame::decode(&mut buf, DEFAULT_MAX_PAYLOAD) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        crate::say!("ssh: bad data from the mitogen-fakessh host: {e}");
                        return 255;
                    }
                };
                let taken = ToClient::from_frame(&frame)
                    .and_then(|msg| self.shared.machine().on_message(msg));
                if let Err(e) = taken {
                    crate::say!("ssh: the session broke its protocol: {e}");
                    return 255;
                }
                if let Some(code) = self.act(log) {
                    return code;
                }
            }
            match sys::read_into(self.reader.as_fd(), &mut buf, 256 << 10) {
                Ok(0) => {
                    crate::say!(
                        "ssh: connection to the mitogen-fakessh host lost before the command finished"
                    );
                    return 255;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::say!("ssh: reading from the mitogen-fakessh host: {e}");
                    return 255;
                }
            }
        }
    }

    /// Carry out what the state machine asks; `Some(code)` ends the session.
    fn act(&self, log: &Log) -> Option<i32> {
        loop {
            let action = self.shared.machine().next_action()?;
            match action {
                ClientAction::Write { stream, data, cost } => {
                    let written = match stream {
                        OutputStream::Stdout => stdio::write_fd(std::io::stdout().as_fd(), &data),
                        OutputStream::Stderr => stdio::write_fd(std::io::stderr().as_fd(), &data),
                    };
                    self.shared.machine().written(stream, cost, written.is_ok());
                }
                ClientAction::CloseOutput(OutputStream::Stdout) => stdio::close_stdout(),
                // Our stderr stays open for our own last words.
                ClientAction::CloseOutput(OutputStream::Stderr) | ClientAction::Forward(_) => {}
                ClientAction::GrantStdin(n) => {
                    if let Err(e) = self.shared.stdin_credit().grant(n) {
                        crate::say!("ssh: the session broke its protocol: {e}");
                        return Some(255);
                    }
                    self.shared.credit_granted.notify_all();
                }
                ClientAction::Send(control) => {
                    let _ = self.shared.outbox.control(&control);
                }
                ClientAction::Finish(ending) => {
                    match &ending {
                        Ending::Error(why) | Ending::Dead(why) => crate::say!("ssh: {why}"),
                        Ending::Exit(ExitStatus::Signal {
                            signal,
                            core_dumped,
                        }) => log.debug(&format!(
                            "remote command killed by signal {signal}{}",
                            if *core_dumped { " (core dumped)" } else { "" }
                        )),
                        Ending::Exit(ExitStatus::Code(_)) => {}
                    }
                    return Some(ending.exit_code());
                }
            }
        }
    }
}

/// Read stdin under credit and forward it; EOF (or a read error) half-closes
/// the remote stdin only.
fn pump_stdin(shared: &Shared) {
    let mut buf = vec![0u8; DATA_CHUNK];
    let mut stdin = std::io::stdin().lock();
    loop {
        let room = shared.wait_for_credit(DATA_CHUNK);
        let n = match stdin.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stdio::wait_for(std::io::stdin().as_fd(), PollFlags::POLLIN).is_err() {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        // Fits: `room` is at least a frame's cost and `n` at most `room`.
        shared.stdin_credit().take(n);
        if shared
            .outbox
            .send_data(handle::SESSION_STDIN, &buf[..n])
            .is_err()
        {
            return;
        }
    }
    if let Some(eof) = shared.machine().stdin_eof() {
        let _ = shared.outbox.control(&eof);
    }
}
