//! The command end of a session (the agent's): what to do with what the
//! client sent, when output may be sent, and when the exit status may go.
//!
//! The driver owns the command's processes and pipes (or a TCP socket). It
//! feeds in the client's messages and what happened locally (stdin bytes
//! written, an output stream ended, the command exited) and carries out the
//! [`CommandAction`]s it gets back.

use bytes::Bytes;

use super::credit::SESSION_WINDOW;
use super::credit::{RecvCredit, SendCredit};
use super::error::ProtocolError;
use super::message::{
    ExitStatus, OutputStream, PtyRequest, SessionControl, SessionEvent, ToCommand,
};

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandAction {
    /// Write `data` to the command's stdin, in order; report
    /// [`CommandSession::stdin_written`] with `cost` once it is written (or
    /// dropped because the command stopped reading).
    WriteStdin { data: Bytes, cost: u32 },
    /// Close the command's stdin once the queued data is written.
    CloseStdin,
    /// Nobody reads this output any more: drop our end (the command gets
    /// EPIPE) and read no more of it.
    CloseOutput(OutputStream),
    /// Deliver signal number `n` to the command's process group.
    Signal(i32),
    /// Resize the command's pty.
    Resize(PtyRequest),
    /// The client went away: end the command for good.
    Kill,
    /// Send this event to the client.
    Send(SessionEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputState {
    /// Being read and sent.
    Open,
    /// Its end of file was sent.
    Ended,
    /// The client's reader went away; nothing more is sent.
    Closed,
}

#[derive(Clone, Debug)]
struct Output {
    credit: SendCredit,
    state: OutputState,
}

/// The command end's state.
#[derive(Clone, Debug)]
pub struct CommandSession {
    stdin: RecvCredit,
    stdin_eof: bool,
    outputs: [Output; 2],
    exit: Option<ExitStatus>,
    done: bool,
    pty: bool,
}

impl CommandSession {
    /// A command with stdout and stderr; on a pty (`pty`), whose one
    /// stream is stdout.
    pub fn new(pty: bool) -> CommandSession {
        let output = |state| Output {
            credit: SendCredit::new(SESSION_WINDOW),
            state,
        };
        let stderr = match pty {
            true => OutputState::Ended,
            false => OutputState::Open,
        };
        CommandSession {
            stdin: RecvCredit::new(SESSION_WINDOW),
            stdin_eof: false,
            outputs: [output(OutputState::Open), output(stderr)],
            exit: None,
            done: false,
            pty,
        }
    }

    /// A relayed byte stream (a TCP connection): stdout only.
    pub fn stream() -> CommandSession {
        let mut s = CommandSession::new(false);
        s.outputs[OutputStream::Stderr.index()].state = OutputState::Ended;
        s
    }

    /// A message from the client.
    pub fn on_message(&mut self, msg: ToCommand) -> Result<Vec<CommandAction>, ProtocolError> {
        if self.done {
            return Ok(vec![]);
        }
        Ok(match msg {
            ToCommand::Stdin(data) => {
                if self.stdin_eof {
                    return Err(ProtocolError::StdinAfterEof);
                }
                let cost = self.stdin.receive(data.len())?;
                vec![CommandAction::WriteStdin { data, cost }]
            }
            ToCommand::Control(control) => self.on_control(control)?,
        })
    }

    fn on_control(&mut self, control: SessionControl) -> Result<Vec<CommandAction>, ProtocolError> {
        Ok(match control {
            SessionControl::Eof if self.stdin_eof => vec![],
            SessionControl::Eof => {
                self.stdin_eof = true;
                vec![CommandAction::CloseStdin]
            }
            SessionControl::Credit { stream, bytes } => {
                self.outputs[stream.index()].credit.grant(bytes)?;
                vec![]
            }
            SessionControl::GrowWindow { stream, bytes } => {
                self.outputs[stream.index()].credit.grow(bytes)?;
                vec![]
            }
            SessionControl::OutputClosed(stream) => {
                let output = &mut self.outputs[stream.index()];
                if output.state != OutputState::Open {
                    return Ok(vec![]);
                }
                output.state = OutputState::Closed;
                let mut actions = vec![CommandAction::CloseOutput(stream)];
                actions.extend(self.exit_if_settled());
                actions
            }
            SessionControl::Signal(n) => vec![CommandAction::Signal(n)],
            SessionControl::WindowChange(size) if self.pty => vec![CommandAction::Resize(size)],
            SessionControl::WindowChange(_) => vec![],
            SessionControl::Close => {
                self.done = true;
                vec![CommandAction::Kill]
            }
        })
    }

    /// Stdin data that cost `cost` has been written (or dropped): the credit
    /// for the client.
    pub fn stdin_written(&mut self, cost: u32) -> CommandAction {
        CommandAction::Send(SessionEvent::StdinCredit(self.stdin.release(cost)))
    }

    /// Whether `stream` is still to be read and sent.
    pub fn output_open(&self, stream: OutputStream) -> bool {
        self.outputs[stream.index()].state == OutputState::Open
    }

    /// The longest chunk of `stream` that may be read and sent now (0:
    /// wait for credit, or the stream is done).
    pub fn sendable(&self, stream: OutputStream, max: usize) -> usize {
        let output = &self.outputs[stream.index()];
        match output.state {
            OutputState::Open => output.credit.sendable(max),
            _ => 0,
        }
    }

    /// Charge `len` bytes of `stream` about to be sent; false if they do not
    /// fit the credit (the driver read more than [`sendable`](Self::sendable)).
    pub fn sent(&mut self, stream: OutputStream, len: usize) -> bool {
        self.outputs[stream.index()].credit.take(len)
    }

    /// `stream` reached end of file (or failed to read).
    pub fn output_ended(&mut self, stream: OutputStream) -> Vec<CommandAction> {
        let output = &mut self.outputs[stream.index()];
        if output.state != OutputState::Open || self.done {
            return vec![];
        }
        output.state = OutputState::Ended;
        let mut actions = vec![CommandAction::Send(SessionEvent::Eof(stream))];
        actions.extend(self.exit_if_settled());
        actions
    }

    /// The command exited; its status goes out once every output has ended.
    pub fn exited(&mut self, status: ExitStatus) -> Vec<CommandAction> {
        if self.exit.is_none() {
            self.exit = Some(status);
        }
        self.exit_if_settled().into_iter().collect()
    }

    /// Output that will never end by itself (a background process holds a
    /// pty after the command exited): end it now.
    pub fn abandon_outputs(&mut self) -> Vec<CommandAction> {
        let mut actions = Vec::new();
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            actions.extend(self.output_ended(stream));
        }
        actions
    }

    /// The session failed here: tell the client and end.
    pub fn fail(&mut self, reason: String) -> Option<CommandAction> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(CommandAction::Send(SessionEvent::Error(reason)))
    }

    /// Nothing more will be sent: the exit status (or an error) went out, or
    /// the client closed the session.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the command's exit status is known.
    pub fn has_exited(&self) -> bool {
        self.exit.is_some()
    }

    fn exit_if_settled(&mut self) -> Option<CommandAction> {
        if self.done || self.outputs.iter().any(|o| o.state == OutputState::Open) {
            return None;
        }
        let status = self.exit.clone()?;
        self.done = true;
        Some(CommandAction::Send(SessionEvent::Exit(status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::credit::MIN_FRAME_COST;

    fn credit(stream: OutputStream, bytes: u32) -> ToCommand {
        ToCommand::Control(SessionControl::Credit { stream, bytes })
    }

    #[test]
    fn exit_waits_for_both_outputs_whatever_the_order() {
        use OutputStream::*;
        let exit = CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(3)));
        let eof = |s| CommandAction::Send(SessionEvent::Eof(s));
        // Exit first, then the outputs end.
        let mut s = CommandSession::new(false);
        assert_eq!(s.exited(ExitStatus::Code(3)), vec![]);
        assert_eq!(s.output_ended(Stderr), vec![eof(Stderr)]);
        assert_eq!(s.output_ended(Stdout), vec![eof(Stdout), exit.clone()]);
        assert!(s.is_done());
        // Outputs first.
        let mut s = CommandSession::new(false);
        s.output_ended(Stdout);
        s.output_ended(Stderr);
        assert_eq!(s.exited(ExitStatus::Code(3)), vec![exit.clone()]);
        // A reader that went away counts as ended, without an EOF event.
        let mut s = CommandSession::new(false);
        s.exited(ExitStatus::Code(3));
        s.output_ended(Stderr);
        let closed = s
            .on_message(ToCommand::Control(SessionControl::OutputClosed(Stdout)))
            .unwrap();
        assert_eq!(closed, vec![CommandAction::CloseOutput(Stdout), exit]);
        assert!(s.output_ended(Stdout).is_empty(), "nothing after the exit");
    }

    #[test]
    fn output_waits_for_credit_and_resumes_when_granted() {
        let mut s = CommandSession::new(false);
        let stdout = OutputStream::Stdout;
        let window = SESSION_WINDOW as usize;
        assert_eq!(s.sendable(stdout, 2 * window), window);
        assert!(s.sent(stdout, window));
        assert_eq!(s.sendable(stdout, 4096), 0, "credit exhausted");
        assert!(!s.sent(stdout, 1));
        s.on_message(credit(stdout, 4096)).unwrap();
        assert_eq!(s.sendable(stdout, 65536), 4096);
        assert_eq!(
            s.sendable(OutputStream::Stderr, 100),
            100,
            "streams are separate"
        );
    }

    #[test]
    fn a_client_that_lies_about_credit_is_refused() {
        let mut s = CommandSession::new(false);
        assert!(s.sent(OutputStream::Stdout, 1000));
        let lie = s
            .on_message(credit(OutputStream::Stdout, 5000))
            .unwrap_err();
        assert!(matches!(lie, ProtocolError::CreditBeyondSent { .. }));
        let never_sent = s.on_message(credit(OutputStream::Stderr, 1)).unwrap_err();
        assert!(matches!(never_sent, ProtocolError::CreditBeyondSent { .. }));
    }

    #[test]
    fn stdin_is_credited_as_written_and_bounded_by_the_window() {
        let mut s = CommandSession::new(false);
        let chunk = Bytes::from(vec![0u8; 300]);
        let actions = s.on_message(ToCommand::Stdin(chunk.clone())).unwrap();
        let [CommandAction::WriteStdin { cost, .. }] = actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(cost, MIN_FRAME_COST, "a short frame costs the minimum");
        assert_eq!(
            s.stdin_written(cost),
            CommandAction::Send(SessionEvent::StdinCredit(MIN_FRAME_COST))
        );
        let big = Bytes::from(vec![0u8; SESSION_WINDOW as usize]);
        s.on_message(ToCommand::Stdin(big.clone())).unwrap();
        let overrun = s.on_message(ToCommand::Stdin(chunk)).unwrap_err();
        assert!(
            matches!(overrun, ProtocolError::Overrun { .. }),
            "{overrun}"
        );
    }

    #[test]
    fn stdin_eof_closes_stdin_once_and_data_after_it_is_refused() {
        let mut s = CommandSession::new(false);
        let eof = ToCommand::Control(SessionControl::Eof);
        assert_eq!(
            s.on_message(eof.clone()).unwrap(),
            vec![CommandAction::CloseStdin]
        );
        assert_eq!(s.on_message(eof).unwrap(), vec![]);
        let late = s.on_message(ToCommand::Stdin(Bytes::from_static(b"x")));
        assert!(matches!(late, Err(ProtocolError::StdinAfterEof)));
        assert!(
            s.output_open(OutputStream::Stdout),
            "EOF on stdin leaves the outputs open"
        );
    }

    #[test]
    fn signals_pass_window_changes_only_reach_a_pty() {
        let size = PtyRequest {
            cols: 100,
            rows: 30,
        };
        let change = ToCommand::Control(SessionControl::WindowChange(size));
        let mut pipes = CommandSession::new(false);
        assert_eq!(pipes.on_message(change.clone()).unwrap(), vec![]);
        assert_eq!(
            pipes
                .on_message(ToCommand::Control(SessionControl::Signal(2)))
                .unwrap(),
            vec![CommandAction::Signal(2)]
        );
        let mut pty = CommandSession::new(true);
        assert_eq!(
            pty.on_message(change).unwrap(),
            vec![CommandAction::Resize(size)]
        );
    }

    #[test]
    fn close_kills_and_ends_everything() {
        let mut s = CommandSession::new(false);
        let close = ToCommand::Control(SessionControl::Close);
        assert_eq!(s.on_message(close).unwrap(), vec![CommandAction::Kill]);
        assert!(s.is_done());
        assert!(
            s.exited(ExitStatus::Code(0)).is_empty(),
            "no exit after a close"
        );
        assert!(s.fail("late".into()).is_none());
    }

    #[test]
    fn a_stream_session_exits_after_its_one_output() {
        let mut s = CommandSession::stream();
        assert_eq!(s.sendable(OutputStream::Stderr, 10), 0);
        s.output_ended(OutputStream::Stdout);
        assert_eq!(
            s.exited(ExitStatus::Code(0)),
            vec![CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(0)))]
        );
    }

    #[test]
    fn a_pty_whose_output_never_ends_is_abandoned_after_the_exit() {
        let mut s = CommandSession::new(true);
        assert!(
            s.output_ended(OutputStream::Stderr).is_empty(),
            "a pty has no stderr"
        );
        assert!(s.exited(ExitStatus::Code(0)).is_empty());
        let actions = s.abandon_outputs();
        assert_eq!(
            actions,
            vec![
                CommandAction::Send(SessionEvent::Eof(OutputStream::Stdout)),
                CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(0))),
            ]
        );
    }
}
