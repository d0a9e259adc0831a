//! The command end of a session (the agent's): what to do with what the
//! client sent, when output may be sent, and when the exit status may go.
//!
//! The driver owns the command's processes and pipes (or a TCP socket). It
//! feeds in the client's messages and what happened locally (stdin bytes
//! written, an output stream ended, the command exited), then carries out
//! [`CommandSession::next_action`] until there is none: the contract of
//! [`Machine`](super::Machine), which the client end follows too.

use std::collections::VecDeque;

use bytes::Bytes;

use std::sync::Arc;
use std::time::Instant;

use super::credit::{GrowthBudget, GrowthHold, MAX_SESSION_WINDOW, SESSION_WINDOW};
use super::credit::{RecvCredit, SendCredit, frame_cost};
use super::error::ProtocolError;
use super::message::{
    ExitStatus, OutputStream, PtyRequest, SessionControl, SessionEvent, ToCommand,
};
use super::pace::OutputPace;

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
    pace: OutputPace,
}

impl Output {
    /// What the client granted in all: in flight and still to send.
    fn window(&self) -> u64 {
        self.credit.available() + self.credit.in_flight()
    }
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
    /// Where stdin's growth comes from, if it is shared with other
    /// sessions (the agent's: [`super::credit::STDIN_GROWTH_BUDGET`]).
    stdin_budget: Option<Arc<GrowthHold>>,
    /// What the driver is to do, in order.
    actions: VecDeque<CommandAction>,
}

impl CommandSession {
    /// A command with stdout and stderr; on a pty (`pty`), whose one
    /// stream is stdout.
    pub fn new(pty: bool) -> CommandSession {
        let output = |state| Output {
            credit: SendCredit::new(SESSION_WINDOW),
            state,
            pace: OutputPace::default(),
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
            stdin_budget: None,
            actions: VecDeque::new(),
        }
    }

    /// Grow stdin's window only as far as `budget`, shared with the other
    /// sessions of this process, allows; this session's share goes back
    /// when it is dropped.
    pub fn sharing_stdin_growth(mut self, budget: &'static GrowthBudget) -> CommandSession {
        self.stdin_budget = Some(GrowthHold::new(budget));
        self
    }

    /// A relayed byte stream (a TCP connection): stdout only.
    pub fn stream() -> CommandSession {
        let mut s = CommandSession::new(false);
        s.outputs[OutputStream::Stderr.index()].state = OutputState::Ended;
        s
    }

    /// A message from the client. An error is a client that broke the
    /// protocol: the driver ends the command and [`fail`](Self::fail)s.
    pub fn on_message(&mut self, msg: ToCommand) -> Result<(), ProtocolError> {
        if self.done {
            // Credit is still counted (and checked): it came for output
            // that was sent.
            if let ToCommand::Control(SessionControl::Credit { stream, bytes }) = msg {
                self.outputs[stream.index()].credit.grant(bytes)?;
            }
            return Ok(());
        }
        match msg {
            ToCommand::Stdin(data) => {
                if self.stdin_eof {
                    return Err(ProtocolError::StdinAfterEof);
                }
                let cost = self.stdin.receive(data.len())?;
                self.actions
                    .push_back(CommandAction::WriteStdin { data, cost });
            }
            ToCommand::Control(control) => self.on_control(control)?,
        }
        Ok(())
    }

    fn on_control(&mut self, control: SessionControl) -> Result<(), ProtocolError> {
        let action = match control {
            SessionControl::Eof if self.stdin_eof => return Ok(()),
            SessionControl::Eof => {
                self.stdin_eof = true;
                CommandAction::CloseStdin
            }
            SessionControl::Credit { stream, bytes } => {
                return self.outputs[stream.index()].credit.grant(bytes);
            }
            SessionControl::GrowWindow { stream, bytes } => {
                return self.outputs[stream.index()].credit.grow(bytes);
            }
            // Granted up to the most a stream may hold, never asked twice
            // for the same bytes: the window only grows.
            SessionControl::GrowStdin { .. } if self.stdin_eof => return Ok(()),
            SessionControl::GrowStdin { window } => {
                let current = self.stdin.window();
                let max = u64::from(MAX_SESSION_WINDOW);
                let want = u64::from(window).min(max).saturating_sub(current);
                let got = match &self.stdin_budget {
                    Some(budget) => budget.take(want),
                    None => want,
                };
                // Stdin's window is never lowered: nothing is kept back.
                match self.stdin.grow_to(current + got).grow {
                    0 => return Ok(()),
                    grown => CommandAction::Send(SessionEvent::StdinWindow(grown)),
                }
            }
            SessionControl::OutputClosed(stream) => {
                let output = &mut self.outputs[stream.index()];
                if output.state != OutputState::Open {
                    return Ok(());
                }
                output.state = OutputState::Closed;
                self.actions.push_back(CommandAction::CloseOutput(stream));
                self.exit_if_settled();
                return Ok(());
            }
            SessionControl::Signal(n) => CommandAction::Signal(n),
            SessionControl::WindowChange(size) if self.pty => CommandAction::Resize(size),
            SessionControl::WindowChange(_) => return Ok(()),
            SessionControl::Close => {
                self.done = true;
                CommandAction::Kill
            }
        };
        self.actions.push_back(action);
        Ok(())
    }

    /// The next thing to do, or `None` until more happens.
    pub fn next_action(&mut self) -> Option<CommandAction> {
        self.actions.pop_front()
    }

    /// Stdin data that cost `cost` has been written (or dropped): credit
    /// for the client.
    pub fn stdin_written(&mut self, cost: u32) {
        let credit = SessionEvent::StdinCredit(self.stdin.release(cost));
        self.actions.push_back(CommandAction::Send(credit));
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

    /// Charge `len` bytes of `stream` about to be sent now; false if they
    /// do not fit the credit (the driver read more than
    /// [`sendable`](Self::sendable)).
    pub fn sent(&mut self, stream: OutputStream, len: usize, now: Instant) -> bool {
        let output = &mut self.outputs[stream.index()];
        if !output.credit.take(len) {
            return false;
        }
        let window = output.window();
        output.pace.sent(u64::from(frame_cost(len)), window, now);
        true
    }

    /// When `stream` may send its next frame, if not now: on a long path
    /// its window is spread over the round trip ([`OutputPace`]), so that a
    /// window grown in one piece does not wait at the bottleneck in front
    /// of every other session of the hop. The driver asks before reading,
    /// after taking the client's messages: credit that came back by `now`
    /// times the round trip.
    pub fn output_ready_at(&mut self, stream: OutputStream, now: Instant) -> Option<Instant> {
        let output = &mut self.outputs[stream.index()];
        output.pace.credited(output.credit.in_flight(), now);
        output.pace.ready_at(output.window(), now)
    }

    /// `stream` reached end of file (or failed to read).
    pub fn output_ended(&mut self, stream: OutputStream) {
        let output = &mut self.outputs[stream.index()];
        if output.state != OutputState::Open || self.done {
            return;
        }
        output.state = OutputState::Ended;
        self.actions
            .push_back(CommandAction::Send(SessionEvent::Eof(stream)));
        self.exit_if_settled();
    }

    /// The command exited; its status goes out once every output has ended.
    pub fn exited(&mut self, status: ExitStatus) {
        if self.exit.is_none() {
            self.exit = Some(status);
        }
        self.exit_if_settled();
    }

    /// Output that will never end by itself (a background process holds a
    /// pty after the command exited): end it now.
    pub fn abandon_outputs(&mut self) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            self.output_ended(stream);
        }
    }

    /// The session failed here: tell the client and end.
    pub fn fail(&mut self, reason: String) {
        if self.done {
            return;
        }
        self.done = true;
        self.actions
            .push_back(CommandAction::Send(SessionEvent::Error(reason)));
    }

    /// Nothing more will be sent: the exit status (or an error) went out, or
    /// the client closed the session, and every action was handed out.
    pub fn is_done(&self) -> bool {
        self.done && self.actions.is_empty()
    }

    /// Whether the command's exit status is known.
    pub fn has_exited(&self) -> bool {
        self.exit.is_some()
    }

    /// Credit this end holds: stdin received and not credited back, and
    /// output credit spent and not granted back (for the pair harness).
    #[cfg(test)]
    pub(crate) fn credit_held(&self) -> (u64, [u64; 2]) {
        let outputs = [&self.outputs[0], &self.outputs[1]].map(|o| o.credit.in_flight());
        (self.stdin.outstanding(), outputs)
    }

    fn exit_if_settled(&mut self) {
        if self.done || self.outputs.iter().any(|o| o.state == OutputState::Open) {
            return;
        }
        if let Some(status) = self.exit.clone() {
            self.done = true;
            self.actions
                .push_back(CommandAction::Send(SessionEvent::Exit(status)));
        }
    }
}

#[cfg(test)]
mod tests;
