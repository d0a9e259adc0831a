//! The client end of a session: the shim, or the host for the standard
//! descriptors a shim handed over to it.
//!
//! Output is written in the order it arrived, one write at a time, and
//! credited back as it is written. The exit status (or an error) is handed
//! out only after everything before it has been written, as OpenSSH's client
//! exits only after its output is out.
//!
//! The host may serve some of a shim's streams and pass the others on to
//! the shim ([`Side::Forwarded`]). Then stderr kept by the shim must be on
//! the shim's stderr before more of the host's stdout goes out: a client
//! that reads the exit status on stdout and then kills ssh (rsync does)
//! must already have the message. The shim's own credit for that stderr is
//! the acknowledgement.

use std::collections::VecDeque;

use bytes::Bytes;

use super::credit::{MAX_SESSION_WINDOW, SESSION_WINDOW};
use super::credit::{RecvCredit, SendCredit, frame_cost};
use super::error::ProtocolError;
use super::message::{
    ExitStatus, OutputStream, PtyRequest, SessionControl, SessionEvent, ToClient,
};
use crate::frame::Frame;

/// Who serves a stream at this end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// This end reads (stdin) or writes (stdout, stderr) it.
    Local,
    /// The shim does; the host passes the stream's messages on to it.
    Forwarded,
}

/// How the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Exit(ExitStatus),
    /// It failed; the text says where and why.
    Error(String),
    /// Its frames could not be delivered; the text says why.
    Dead(String),
}

impl Ending {
    /// The status OpenSSH's client exits with: the command's, 255 for a
    /// death by signal and for any failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Exit(ExitStatus::Code(code)) => code & 0xff,
            _ => 255,
        }
    }

    /// The message that carries this ending to a shim.
    pub fn to_message(&self) -> ToClient {
        match self {
            Ending::Exit(status) => ToClient::Event(SessionEvent::Exit(status.clone())),
            Ending::Error(why) => ToClient::Event(SessionEvent::Error(why.clone())),
            Ending::Dead(why) => ToClient::Dead(why.clone()),
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Write `data` to `stream`; report [`ClientSession::written`] with
    /// `cost` before asking for the next action.
    Write {
        stream: OutputStream,
        data: Bytes,
        cost: u32,
    },
    /// `stream` ended: half-close a socket, close a pipe.
    CloseOutput(OutputStream),
    /// Pass this on to the shim (host only).
    Forward(ToClient),
    /// Send this to the command end.
    Send(SessionControl),
    /// The session is over: exit with [`Ending::exit_code`] (shim), or
    /// close the served streams and forward the ending (host).
    Finish(Ending),
}

#[derive(Clone, Debug)]
struct ClientOutput {
    side: Side,
    credit: RecvCredit,
    /// Its end of file arrived.
    eof: bool,
    /// Writing it failed: nobody reads it any more.
    reader_gone: bool,
}

/// The client end's state.
#[derive(Clone, Debug)]
pub struct ClientSession {
    stdin: Side,
    /// Credit for stdin we read and send ourselves ([`Side::Local`]).
    stdin_credit: SendCredit,
    outputs: [ClientOutput; 2],
    pty: bool,
    /// Credit and control messages: never held back.
    controls: VecDeque<ClientAction>,
    /// Writes, ends of file, forwarded output and the ending, in order.
    ordered: VecDeque<ClientAction>,
    /// A write was handed out and not yet reported.
    writing: bool,
    stderr_forwarded: u64,
    stderr_acked: u64,
    stdin_eof_sent: bool,
    /// The stdin window last asked for ([`ClientSession::ask_stdin_window`]).
    stdin_asked: u64,
    ending: bool,
    finished: bool,
}

impl ClientSession {
    /// A client end serving everything itself (the shim, a tunnel).
    pub fn local(pty: bool) -> ClientSession {
        ClientSession::split(Side::Local, Side::Local, Side::Local, pty)
    }

    /// A client end that serves some streams and forwards the others.
    pub fn split(stdin: Side, stdout: Side, stderr: Side, pty: bool) -> ClientSession {
        let output = |side| ClientOutput {
            side,
            credit: RecvCredit::new(SESSION_WINDOW),
            eof: false,
            reader_gone: false,
        };
        ClientSession {
            stdin,
            stdin_credit: SendCredit::new(SESSION_WINDOW),
            outputs: [output(stdout), output(stderr)],
            pty,
            controls: VecDeque::new(),
            ordered: VecDeque::new(),
            writing: false,
            stderr_forwarded: 0,
            stderr_acked: 0,
            stdin_eof_sent: false,
            stdin_asked: 0,
            ending: false,
            finished: false,
        }
    }

    /// A frame for the client end: decoded, then taken as [`on_message`].
    ///
    /// [`on_message`]: ClientSession::on_message
    pub fn on_frame(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        self.on_message(ToClient::from_frame(frame)?)
    }

    /// A message from the command end (or a dead message about the session).
    pub fn on_message(&mut self, msg: ToClient) -> Result<(), ProtocolError> {
        if self.ending {
            return Ok(());
        }
        match msg {
            ToClient::Output(stream, data) => self.on_output(stream, data)?,
            // Stdin's credit and window: ours if we read stdin, else the
            // shim's.
            ToClient::Event(
                event @ (SessionEvent::StdinCredit(_) | SessionEvent::StdinWindow(_)),
            ) => match (self.stdin, event) {
                (Side::Local, SessionEvent::StdinCredit(n)) => self.stdin_credit.grant(n)?,
                (Side::Local, SessionEvent::StdinWindow(n)) => self.stdin_credit.grow(n)?,
                (_, event) => self
                    .controls
                    .push_back(ClientAction::Forward(ToClient::Event(event))),
            },
            ToClient::Event(SessionEvent::Eof(stream)) => {
                let output = &mut self.outputs[stream.index()];
                if !output.eof {
                    output.eof = true;
                    self.ordered.push_back(match output.side {
                        Side::Local => ClientAction::CloseOutput(stream),
                        Side::Forwarded => {
                            ClientAction::Forward(ToClient::Event(SessionEvent::Eof(stream)))
                        }
                    });
                }
            }
            ToClient::Event(SessionEvent::Exit(status)) => self.end(Ending::Exit(status)),
            ToClient::Event(SessionEvent::Error(why)) => self.end(Ending::Error(why)),
            ToClient::Dead(why) => self.end(Ending::Dead(why)),
            // A far-side listener's news: for whoever holds the forward
            // (the shim), wherever the data goes.
            ToClient::Event(
                event @ (SessionEvent::Listening { .. } | SessionEvent::Accepted { .. }),
            ) => self
                .controls
                .push_back(ClientAction::Forward(ToClient::Event(event))),
        }
        Ok(())
    }

    fn on_output(&mut self, stream: OutputStream, data: Bytes) -> Result<(), ProtocolError> {
        let output = &mut self.outputs[stream.index()];
        if output.eof {
            return Err(ProtocolError::DataAfterEof(stream));
        }
        let cost = output.credit.receive(data.len())?;
        match output.side {
            Side::Forwarded => {
                if stream == OutputStream::Stderr {
                    self.stderr_forwarded += u64::from(frame_cost(data.len()));
                }
                self.ordered
                    .push_back(ClientAction::Forward(ToClient::Output(stream, data)));
            }
            Side::Local if output.reader_gone => {
                let bytes = output.credit.release(cost);
                if bytes > 0 {
                    self.controls
                        .push_back(ClientAction::Send(SessionControl::Credit { stream, bytes }));
                }
            }
            Side::Local => self
                .ordered
                .push_back(ClientAction::Write { stream, data, cost }),
        }
        Ok(())
    }

    fn end(&mut self, ending: Ending) {
        self.ending = true;
        self.ordered.push_back(ClientAction::Finish(ending));
    }

    /// The next thing to do, or `None` until more arrives or a write is
    /// reported.
    pub fn next_action(&mut self) -> Option<ClientAction> {
        if let Some(control) = self.controls.pop_front() {
            return Some(control);
        }
        if self.writing || self.finished {
            return None;
        }
        let head = self.ordered.front()?;
        if self.stderr_unsettled() && waits_for_stderr(head) {
            return None;
        }
        let action = self.ordered.pop_front()?;
        match &action {
            ClientAction::Write { stream, cost, .. }
                if self.outputs[stream.index()].reader_gone =>
            {
                // Its reader went away after this was queued: credit it.
                let (stream, cost) = (*stream, *cost);
                let bytes = self.outputs[stream.index()].credit.release(cost);
                if bytes == 0 {
                    // All of it kept back (a window being lowered).
                    return self.next_action();
                }
                return Some(ClientAction::Send(SessionControl::Credit { stream, bytes }));
            }
            ClientAction::Write { .. } => self.writing = true,
            ClientAction::Finish(_) => self.finished = true,
            _ => {}
        }
        Some(action)
    }

    /// A [`ClientAction::Write`] is done: `ok` false when the reader went
    /// away (the command end then closes that output).
    pub fn written(&mut self, stream: OutputStream, cost: u32, ok: bool) {
        self.writing = false;
        let output = &mut self.outputs[stream.index()];
        if !ok && !output.reader_gone {
            output.reader_gone = true;
            self.controls
                .push_back(ClientAction::Send(SessionControl::OutputClosed(stream)));
        }
        let bytes = output.credit.release(cost);
        if bytes > 0 {
            self.controls
                .push_back(ClientAction::Send(SessionControl::Credit { stream, bytes }));
        }
    }

    /// `stream`'s window, and what of it was received and not yet written.
    pub fn output_window(&self, stream: OutputStream) -> (u64, u64) {
        let credit = &self.outputs[stream.index()].credit;
        (credit.window(), credit.outstanding())
    }

    /// Raise the window of `stream` to `to`, if it is written here (a
    /// forwarded stream keeps the shim's window), and tell the command end:
    /// credit kept back while it was lowered goes back first. If it was
    /// raised, by how much the command end's window grew (what this end
    /// may have to hold more of).
    pub fn grow_output(&mut self, stream: OutputStream, to: u64) -> Option<u32> {
        let output = &mut self.outputs[stream.index()];
        if output.side != Side::Local || output.eof || self.ending {
            return None;
        }
        let raise = output.credit.grow_to(to);
        if raise.credit > 0 {
            let credit = SessionControl::Credit {
                stream,
                bytes: raise.credit,
            };
            self.controls.push_back(ClientAction::Send(credit));
        }
        if raise.grow > 0 {
            let grow = SessionControl::GrowWindow {
                stream,
                bytes: raise.grow,
            };
            self.controls.push_back(ClientAction::Send(grow));
        }
        (raise.credit > 0 || raise.grow > 0).then_some(raise.grow)
    }

    /// Lower the window of `stream` to `to` (a local one: see
    /// [`ClientSession::grow_output`]): credit is kept back until the
    /// command end has only that much room. Whether it will be lowered.
    pub fn shrink_output(&mut self, stream: OutputStream, to: u64) -> bool {
        let output = &mut self.outputs[stream.index()];
        if output.side != Side::Local || output.eof || self.ending {
            return false;
        }
        output.credit.shrink_to(to);
        true
    }

    /// Stdin's window (granted credit in all) and what of it is in flight.
    pub fn stdin_window(&self) -> (u64, u64) {
        let credit = &self.stdin_credit;
        (credit.available() + credit.in_flight(), credit.in_flight())
    }

    /// Ask the command end to raise stdin's window to `to` (at most
    /// [`MAX_SESSION_WINDOW`]; the grant comes as
    /// [`SessionEvent::StdinWindow`]): the request, unless stdin is over
    /// or that much was already asked for.
    pub fn ask_stdin_window(&mut self, to: u64) -> Option<SessionControl> {
        let to = to.min(u64::from(MAX_SESSION_WINDOW));
        let (window, _) = self.stdin_window();
        let asked = self.stdin_asked.max(window);
        if self.stdin_over() || to <= asked {
            return None;
        }
        self.stdin_asked = to;
        Some(SessionControl::GrowStdin { window: to as u32 })
    }

    /// The shim sent this control (host only): its credit for a forwarded
    /// stream frees the window here too, and acknowledges forwarded stderr.
    pub fn on_shim_control(&mut self, control: &SessionControl) {
        if let SessionControl::Credit { stream, bytes } = control {
            let output = &mut self.outputs[stream.index()];
            if output.side == Side::Forwarded {
                output.credit.release(*bytes);
                if *stream == OutputStream::Stderr {
                    self.stderr_acked += u64::from(*bytes);
                }
            }
        }
    }

    /// The longest chunk of stdin we may read and send now: 0 while the
    /// command end has not given credit back, and for good once stdin
    /// ended, the session is ending or stdin is not ours to read
    /// ([`Side::Forwarded`]).
    pub fn stdin_sendable(&self, max: usize) -> usize {
        if self.stdin_over() {
            return 0;
        }
        self.stdin_credit.sendable(max)
    }

    /// Stdin will never be sendable again: it ended, the session is
    /// ending, or stdin is not ours to read.
    pub fn stdin_over(&self) -> bool {
        self.stdin != Side::Local || self.stdin_eof_sent || self.ending
    }

    /// Charge `len` bytes of stdin about to be sent; false if they do not
    /// fit the credit (the driver read more than
    /// [`stdin_sendable`](Self::stdin_sendable)) or stdin is over.
    pub fn stdin_sent(&mut self, len: usize) -> bool {
        !self.stdin_eof_sent && !self.ending && self.stdin_credit.take(len)
    }

    /// Our stdin reached end of file (or failed to read): what closes the
    /// command's stdin, the first time only, and not once the session is
    /// ending (the command is gone).
    pub fn stdin_eof(&mut self) -> Option<SessionControl> {
        let first = !std::mem::replace(&mut self.stdin_eof_sent, true);
        (first && !self.ending).then_some(SessionControl::Eof)
    }

    /// A signal for the command's process group.
    pub fn signal(&self, signal: i32) -> SessionControl {
        SessionControl::Signal(signal)
    }

    /// Our terminal changed size; only a pty session cares.
    pub fn resize(&self, size: PtyRequest) -> Option<SessionControl> {
        self.pty.then_some(SessionControl::WindowChange(size))
    }

    /// The ending has been handed out: nothing more will happen.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Credit this end holds: stdin credit spent and not granted back, and
    /// output received and not yet credited (the pair harness's check that
    /// every byte's credit comes home).
    #[cfg(test)]
    pub(crate) fn credit_held(&self) -> (u64, [u64; 2]) {
        let outputs = [&self.outputs[0], &self.outputs[1]].map(|o| o.credit.outstanding());
        (self.stdin_credit.in_flight(), outputs)
    }

    /// Credit of each output kept back to lower its window: the command
    /// end counts it in flight for ever.
    #[cfg(test)]
    pub(crate) fn credit_kept(&self) -> [u64; 2] {
        [&self.outputs[0], &self.outputs[1]].map(|o| o.credit.kept())
    }

    fn stderr_unsettled(&self) -> bool {
        self.stderr_acked < self.stderr_forwarded
    }
}

/// Whether `action` must wait until forwarded stderr is on the shim's stderr.
fn waits_for_stderr(action: &ClientAction) -> bool {
    matches!(
        action,
        ClientAction::Write {
            stream: OutputStream::Stdout,
            ..
        } | ClientAction::CloseOutput(OutputStream::Stdout)
            | ClientAction::Finish(_)
    )
}

#[cfg(test)]
mod tests;
