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

use super::credit::SESSION_WINDOW;
use super::credit::{RecvCredit, frame_cost};
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
    /// The command end took this much more stdin credit.
    GrantStdin(u32),
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
            outputs: [output(stdout), output(stderr)],
            pty,
            controls: VecDeque::new(),
            ordered: VecDeque::new(),
            writing: false,
            stderr_forwarded: 0,
            stderr_acked: 0,
            stdin_eof_sent: false,
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
            ToClient::Event(SessionEvent::StdinCredit(n)) => match self.stdin {
                Side::Local => self.controls.push_back(ClientAction::GrantStdin(n)),
                Side::Forwarded => self
                    .controls
                    .push_back(ClientAction::Forward(ToClient::Event(
                        SessionEvent::StdinCredit(n),
                    ))),
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
                self.controls
                    .push_back(ClientAction::Send(SessionControl::Credit { stream, bytes }));
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
        self.controls
            .push_back(ClientAction::Send(SessionControl::Credit { stream, bytes }));
    }

    /// `stream`'s window, and what of it was received and not yet written.
    pub fn output_window(&self, stream: OutputStream) -> (u64, u64) {
        let credit = &self.outputs[stream.index()].credit;
        (credit.window(), credit.outstanding())
    }

    /// Raise the window of `stream` to `to`, if it is written here (a
    /// forwarded stream keeps the shim's window), and tell the command end.
    /// Whether it grew.
    pub fn grow_output(&mut self, stream: OutputStream, to: u64) -> bool {
        let output = &mut self.outputs[stream.index()];
        if output.side != Side::Local || output.eof || self.ending {
            return false;
        }
        let bytes = output.credit.grow_to(to);
        if bytes > 0 {
            let grow = SessionControl::GrowWindow { stream, bytes };
            self.controls.push_back(ClientAction::Send(grow));
        }
        bytes > 0
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

    /// Our stdin reached end of file (or failed): what closes the
    /// command's stdin, the first time only.
    pub fn stdin_eof(&mut self) -> Option<SessionControl> {
        (!std::mem::replace(&mut self.stdin_eof_sent, true)).then_some(SessionControl::Eof)
    }

    /// A signal for the command's process group.
    pub fn signal(&self, signal: i32) -> SessionControl {
        SessionControl::Signal(signal)
    }

    /// Our terminal changed size; only a pty session cares.
    pub fn resize(&self, size: PtyRequest) -> Option<SessionControl> {
        self.pty.then_some(SessionControl::WindowChange(size))
    }

    /// The ending has been handed out.
    pub fn is_finished(&self) -> bool {
        self.finished
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
mod tests {
    use super::*;
    use crate::session::MIN_FRAME_COST;

    fn out(stream: OutputStream, text: &'static str) -> ToClient {
        ToClient::Output(stream, Bytes::from_static(text.as_bytes()))
    }

    fn event(e: SessionEvent) -> ToClient {
        ToClient::Event(e)
    }

    /// Carry out every action as a driver whose writes succeed would.
    fn drain(s: &mut ClientSession) -> Vec<ClientAction> {
        let mut done = Vec::new();
        while let Some(action) = s.next_action() {
            if let ClientAction::Write { stream, cost, .. } = &action {
                s.written(*stream, *cost, true);
            }
            done.push(action);
        }
        done
    }

    #[test]
    fn output_is_written_in_order_and_credited_and_the_exit_comes_last() {
        use OutputStream::*;
        let mut s = ClientSession::local(false);
        for msg in [
            out(Stdout, "a"),
            out(Stderr, "b"),
            event(SessionEvent::Eof(Stdout)),
            out(Stderr, "c"),
            event(SessionEvent::Exit(ExitStatus::Code(7))),
        ] {
            s.on_message(msg).unwrap();
        }
        let kinds: Vec<String> = drain(&mut s)
            .iter()
            .map(|a| match a {
                ClientAction::Write { stream, data, .. } => {
                    format!("write {stream:?} {}", String::from_utf8_lossy(data))
                }
                ClientAction::Send(SessionControl::Credit { stream, bytes }) => {
                    format!("credit {stream:?} {bytes}")
                }
                ClientAction::CloseOutput(s) => format!("close {s:?}"),
                ClientAction::Finish(e) => format!("exit {}", e.exit_code()),
                other => format!("{other:?}"),
            })
            .collect();
        let cost = MIN_FRAME_COST;
        assert_eq!(
            kinds,
            [
                "write Stdout a".to_string(),
                format!("credit Stdout {cost}"),
                "write Stderr b".into(),
                format!("credit Stderr {cost}"),
                "close Stdout".into(),
                "write Stderr c".into(),
                format!("credit Stderr {cost}"),
                "exit 7".into(),
            ]
        );
        assert!(s.is_finished());
    }

    #[test]
    fn the_exit_waits_until_the_output_before_it_is_written() {
        let mut s = ClientSession::local(false);
        s.on_message(out(OutputStream::Stdout, "last words"))
            .unwrap();
        s.on_message(event(SessionEvent::Exit(ExitStatus::Code(0))))
            .unwrap();
        let Some(ClientAction::Write { stream, cost, .. }) = s.next_action() else {
            panic!("the write comes first")
        };
        assert_eq!(s.next_action(), None, "no exit while the write is pending");
        s.written(stream, cost, true);
        assert!(matches!(s.next_action(), Some(ClientAction::Send(_))));
        assert_eq!(
            s.next_action(),
            Some(ClientAction::Finish(Ending::Exit(ExitStatus::Code(0))))
        );
        assert_eq!(s.next_action(), None);
    }

    #[test]
    fn data_after_eof_and_beyond_the_window_are_refused() {
        let mut s = ClientSession::local(false);
        s.on_message(event(SessionEvent::Eof(OutputStream::Stdout)))
            .unwrap();
        let late = s.on_message(out(OutputStream::Stdout, "x")).unwrap_err();
        assert!(matches!(
            late,
            ProtocolError::DataAfterEof(OutputStream::Stdout)
        ));
        let mut s = ClientSession::local(false);
        let window = Bytes::from(vec![1u8; SESSION_WINDOW as usize]);
        s.on_message(ToClient::Output(OutputStream::Stderr, window))
            .unwrap();
        let over = s.on_message(out(OutputStream::Stderr, "x")).unwrap_err();
        assert!(matches!(over, ProtocolError::Overrun { .. }));
        // Writing it out frees the window again.
        drain(&mut s);
        s.on_message(out(OutputStream::Stderr, "x")).unwrap();
    }

    #[test]
    fn a_reader_that_went_away_closes_only_its_stream() {
        let mut s = ClientSession::local(false);
        s.on_message(out(OutputStream::Stdout, "1")).unwrap();
        s.on_message(out(OutputStream::Stdout, "2")).unwrap();
        s.on_message(out(OutputStream::Stderr, "3")).unwrap();
        let Some(ClientAction::Write { stream, cost, .. }) = s.next_action() else {
            panic!()
        };
        s.written(stream, cost, false);
        assert_eq!(
            s.next_action(),
            Some(ClientAction::Send(SessionControl::OutputClosed(
                OutputStream::Stdout
            )))
        );
        let rest = drain(&mut s);
        assert!(
            !rest.iter().any(|a| matches!(
                a,
                ClientAction::Write {
                    stream: OutputStream::Stdout,
                    ..
                }
            )),
            "nothing more is written to a gone reader: {rest:?}"
        );
        assert!(rest.iter().any(|a| matches!(
            a,
            ClientAction::Write {
                stream: OutputStream::Stderr,
                ..
            }
        )));
        // Later stdout is credited at once, unwritten.
        s.on_message(out(OutputStream::Stdout, "4")).unwrap();
        assert!(matches!(
            s.next_action(),
            Some(ClientAction::Send(SessionControl::Credit { .. }))
        ));
    }

    #[test]
    fn served_stdout_waits_for_the_shims_stderr_to_be_written() {
        use OutputStream::*;
        let mut s = ClientSession::split(Side::Local, Side::Local, Side::Forwarded, false);
        s.on_message(out(Stderr, "Permission denied")).unwrap();
        s.on_message(out(Stdout, "status")).unwrap();
        s.on_message(event(SessionEvent::Exit(ExitStatus::Code(23))))
            .unwrap();
        assert!(matches!(
            s.next_action(),
            Some(ClientAction::Forward(ToClient::Output(Stderr, _)))
        ));
        assert_eq!(s.next_action(), None, "stdout waits for the shim");
        s.on_shim_control(&SessionControl::Credit {
            stream: Stderr,
            bytes: MIN_FRAME_COST,
        });
        assert!(matches!(
            s.next_action(),
            Some(ClientAction::Write { stream: Stdout, .. })
        ));
    }

    #[test]
    fn stdin_credit_goes_where_stdin_is_read() {
        let mut local = ClientSession::local(false);
        local
            .on_message(event(SessionEvent::StdinCredit(900)))
            .unwrap();
        assert_eq!(local.next_action(), Some(ClientAction::GrantStdin(900)));
        let mut split = ClientSession::split(Side::Forwarded, Side::Local, Side::Local, false);
        split
            .on_message(event(SessionEvent::StdinCredit(900)))
            .unwrap();
        assert!(matches!(
            split.next_action(),
            Some(ClientAction::Forward(_))
        ));
    }

    #[test]
    fn eof_once_signals_and_window_changes_only_for_a_pty() {
        let mut s = ClientSession::local(false);
        assert_eq!(s.stdin_eof(), Some(SessionControl::Eof));
        assert_eq!(s.stdin_eof(), None);
        assert_eq!(s.signal(15), SessionControl::Signal(15));
        let size = PtyRequest { cols: 1, rows: 1 };
        assert_eq!(s.resize(size), None);
        let pty = ClientSession::local(true);
        assert_eq!(pty.resize(size), Some(SessionControl::WindowChange(size)));
    }

    #[test]
    fn endings_give_openssh_exit_codes() {
        assert_eq!(Ending::Exit(ExitStatus::Code(300)).exit_code(), 300 & 0xff);
        let killed = ExitStatus::Signal {
            signal: 9,
            core_dumped: false,
        };
        assert_eq!(Ending::Exit(killed).exit_code(), 255);
        assert_eq!(Ending::Error("x".into()).exit_code(), 255);
        let mut s = ClientSession::local(false);
        s.on_message(ToClient::Dead("no route".into())).unwrap();
        s.on_message(out(OutputStream::Stdout, "ignored after the end"))
            .unwrap();
        assert_eq!(
            drain(&mut s),
            vec![ClientAction::Finish(Ending::Dead("no route".into()))]
        );
    }
}
