//! One session from the shim's side: a fresh socketpair handed to the host,
//! the request, then the client end of the session protocol
//! ([`ClientSession`]) driven over it.
//!
//! Deliberately synchronous: one thread reads stdin under the credit the
//! agent grants, the main thread writes stdout and stderr and grants credit
//! back once the bytes are written, a third takes signals. Exit only comes
//! after all output.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use bytes::BytesMut;
use nix::poll::PollFlags;
use proto::frame::{DEFAULT_MAX_PAYLOAD, Frame};
use proto::message::handle;
use proto::session::{
    ClientAction, DATA_CHUNK, Ending, ExitStatus, OutputStream, SessionEvent, SessionRequest,
    ToClient,
};
use proto::text::{sanitize, sanitize_line};

use crate::control::Control;
use crate::error::ShimError;
use crate::link::{Shared, header};
use crate::log::Log;
use crate::out::say;
use crate::stdio::{self, Handover, StdinSource};
use crate::{signals, sys};

pub struct Session {
    shared: Arc<Shared>,
    reader: UnixStream,
    /// What to do with a far-side listener's news (`-R`, `-A`).
    on_event: Option<Box<dyn FnMut(SessionEvent) + Send>>,
    /// A forwarded connection's failure is news for `-v` only.
    quiet: bool,
    /// `-W`: a failure is told as OpenSSH tells a stdio forward's.
    stdio_forward: bool,
}

impl Session {
    /// Hand a fresh socket to the host and send the request on it.
    pub fn open(
        request: &SessionRequest,
        handover: Handover,
        log: &Log,
    ) -> Result<Session, ShimError> {
        let control = Control::find()?;
        let (mine, theirs) = crate::sys::stream_pair().map_err(ShimError::SocketPair)?;
        control.pass_session(&theirs, handover)?;
        drop(theirs);
        handover.let_go();
        log.debug(&format!("session socket handed to the host ({handover:?})"));
        let sock = UnixStream::from(mine);
        let reader = sock.try_clone().map_err(ShimError::Dup)?;
        let shared = Arc::new(Shared::new(sock, request.pty.is_some()));
        shared
            .outbox
            .send(&Frame::cbor(header(handle::SESSION_OPEN), request))
            .map_err(ShimError::Request)?;
        Ok(Session {
            shared,
            reader,
            on_event: None,
            quiet: false,
            stdio_forward: false,
        })
    }

    /// Pass `Listening` and `Accepted` events to `hook`.
    pub fn on_event(mut self, hook: impl FnMut(SessionEvent) + Send + 'static) -> Session {
        self.on_event = Some(Box::new(hook));
        self
    }

    /// A `-W` session: its failure as OpenSSH words a failed stdio
    /// forward.
    pub fn stdio_forward(mut self) -> Session {
        self.stdio_forward = true;
        self
    }

    /// Say nothing on failure (the caller logs it at `-v`).
    pub fn quiet(mut self) -> Session {
        self.quiet = true;
        self
    }

    /// Serve the session; returns the exit status.
    pub fn run(mut self, stdin: StdinSource, log: &Log) -> i32 {
        // A forwarded connection's session is not the command's: signals
        // are for the command's (and end the process as they would).
        if !self.quiet {
            signals::forward(self.shared.clone());
        }
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
                        say!("ssh: bad data from the mitogen-fakessh host: {e}");
                        return 255;
                    }
                };
                let taken = self.shared.machine().on_frame(&frame);
                self.shared.machine_changed();
                if let Err(e) = taken {
                    say!("ssh: the session broke its protocol: {e}");
                    return 255;
                }
                if let Some(code) = self.act(log) {
                    return code;
                }
            }
            match sys::read_into(self.reader.as_fd(), &mut buf, 256 << 10) {
                Ok(0) => {
                    if !self.quiet {
                        say!(
                            "ssh: connection to the mitogen-fakessh host lost before the command finished"
                        );
                    }
                    return 255;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    say!("ssh: reading from the mitogen-fakessh host: {e}");
                    return 255;
                }
            }
        }
    }

    /// Carry out what the state machine asks; `Some(code)` ends the session.
    fn act(&mut self, log: &Log) -> Option<i32> {
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
                ClientAction::Forward(ToClient::Event(event)) => {
                    if let Some(hook) = &mut self.on_event {
                        hook(event);
                    }
                }
                // Our stderr stays open for our own last words.
                ClientAction::CloseOutput(OutputStream::Stderr) | ClientAction::Forward(_) => {}
                ClientAction::Send(control) => {
                    let _ = self.shared.outbox.control(&control);
                }
                ClientAction::Finish(ending) => {
                    match &ending {
                        // The reasons carry remote text (an rc file's
                        // MFS-ERROR line, a hostile agent's dead message):
                        // escaped, so they cannot drive the terminal.
                        Ending::Error(why) | Ending::Dead(why) if self.quiet => log.debug(
                            &format!("forwarded connection: {}", sanitize(why.as_bytes())),
                        ),
                        Ending::Error(why) if self.stdio_forward => {
                            // "connect to host H port P: Connection refused"
                            let reason = why.rsplit(": ").next().unwrap_or(why);
                            let reason = sanitize_line(reason.as_bytes());
                            say!("channel 0: open failed: connect failed: {reason}");
                            say!("stdio forwarding failed");
                        }
                        Ending::Error(why) | Ending::Dead(why) => {
                            say!("ssh: {}", sanitize(why.as_bytes()))
                        }
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
        if room == 0 {
            return;
        }
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
        // Fits: `room` is at least a frame's cost and `n` at most `room`;
        // false only if the session ended meanwhile.
        if !shared.machine().stdin_sent(n) {
            return;
        }
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
