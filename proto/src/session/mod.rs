//! The session protocol: one `ssh` invocation, from the shim's request to
//! the remote command's exit status.
//!
//! ```text
//!  client end (shim, or host for          command end (agent)
//!  the stdio a shim handed over)
//!        |  SessionRequest --> host --> SpawnRequest  |
//!        |  ToCommand::Stdin / Control  ------------> |   CommandSession
//!        |  <------------  ToClient::Output / Event   |
//!   ClientSession
//! ```
//!
//! Everything here is free of I/O: [`message`] turns frames into typed
//! messages and back, [`credit`] does the flow-control accounting, and
//! [`ClientSession`] and [`CommandSession`] are the state machines of the two
//! ends. The shim, the host's relay, the host's tunnels and the agent are
//! thin drivers: they feed in what arrived or what their I/O did, and carry
//! out the actions the state machine hands back. The rules live here once:
//!
//! - credit windows in both directions, checked on both sides; output
//!   windows grow with the measured bandwidth-delay product ([`autotune`]);
//! - stdin EOF closes only the command's stdin;
//! - output is written in the order it came, and the exit status is handed
//!   out only after all output has been written;
//! - a reader that went away closes that stream only (the command gets EPIPE);
//! - signals go to the command, window changes only to a pty session.

pub mod autotune;
pub mod client;
pub mod command;
pub mod credit;
pub mod error;
pub mod listener;
pub mod message;
pub mod pace;
pub mod pacer;
#[cfg(test)]
mod pair;

/// The one contract of both ends' machines. A driver feeds in what
/// arrived from the other end ([`on_message`](Machine::on_message)) and
/// what its own I/O did (each machine's own methods: a write done, an
/// output ended, stdin read), then carries out
/// [`next_action`](Machine::next_action) until it returns `None`, and stops
/// once [`is_done`](Machine::is_done). Nothing else happens in between: a
/// machine never waits, reads or writes.
pub trait Machine {
    /// What the other end sends this one.
    type Incoming;
    /// What this end's driver is told to do.
    type Action;
    /// A message from the other end; an error is a peer that broke the
    /// protocol.
    fn on_message(&mut self, msg: Self::Incoming) -> Result<(), ProtocolError>;
    /// The next thing to do, or `None` until more happens.
    fn next_action(&mut self) -> Option<Self::Action>;
    /// Nothing more will happen.
    fn is_done(&self) -> bool;
}

impl Machine for ClientSession {
    type Incoming = ToClient;
    type Action = ClientAction;
    fn on_message(&mut self, msg: ToClient) -> Result<(), ProtocolError> {
        ClientSession::on_message(self, msg)
    }
    fn next_action(&mut self) -> Option<ClientAction> {
        ClientSession::next_action(self)
    }
    fn is_done(&self) -> bool {
        ClientSession::is_done(self)
    }
}

impl Machine for ListenerSession {
    type Incoming = ToCommand;
    type Action = ListenerAction;
    fn on_message(&mut self, msg: ToCommand) -> Result<(), ProtocolError> {
        ListenerSession::on_message(self, msg)
    }
    fn next_action(&mut self) -> Option<ListenerAction> {
        ListenerSession::next_action(self)
    }
    fn is_done(&self) -> bool {
        ListenerSession::is_done(self)
    }
}

impl Machine for CommandSession {
    type Incoming = ToCommand;
    type Action = CommandAction;
    fn on_message(&mut self, msg: ToCommand) -> Result<(), ProtocolError> {
        CommandSession::on_message(self, msg)
    }
    fn next_action(&mut self) -> Option<CommandAction> {
        CommandSession::next_action(self)
    }
    fn is_done(&self) -> bool {
        CommandSession::is_done(self)
    }
}

pub use autotune::WindowTuner;
pub use client::{ClientAction, ClientSession, Ending, Side};
pub use command::{CommandAction, CommandSession};
pub use credit::{
    DATA_CHUNK, GrowthBudget, GrowthHold, MAX_SESSION_WINDOW, MIN_FRAME_COST, Raise, RecvCredit,
    SESSION_QUEUE, SESSION_WINDOW, STDIN_GROWTH_BUDGET, SendCredit, frame_cost,
};
pub use error::ProtocolError;
pub use listener::{ListenerAction, ListenerSession, WAITING_MAX};
pub use message::{
    ExitStatus, ListenAddress, MasterCommand, OutputStream, PtyRequest, RemoteCommand,
    SessionControl, SessionEvent, SessionRequest, SpawnRequest, ToClient, ToCommand, header,
};
pub use pace::{OutputPace, PACING_GAIN, Pace};
pub use pacer::StdinPacer;
