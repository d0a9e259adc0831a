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
pub mod message;

pub use autotune::WindowTuner;
pub use client::{ClientAction, ClientSession, Ending, Side};
pub use command::{CommandAction, CommandSession};
pub use credit::{
    DATA_CHUNK, MAX_SESSION_WINDOW, MIN_FRAME_COST, RecvCredit, SESSION_QUEUE, SESSION_WINDOW,
    SendCredit, frame_cost,
};
pub use error::ProtocolError;
pub use message::{
    ExitStatus, ListenAddress, MasterCommand, OutputStream, PtyRequest, RemoteCommand,
    SessionControl, SessionEvent, SessionRequest, SpawnRequest, ToClient, ToCommand, header,
};
