//! Hops: starting the next context from where the previous one stands.
//!
//! - [`local`]: our own executable in agent mode, as the same user;
//! - [`privilege`]: sudo, su and doas under the hybrid pty;
//! - [`here`]: either of those, started by this process;
//! - [`ssh`]: the in-process ssh client (config, known_hosts, host keys,
//!   authentication, transport), always run by the host;
//! - [`agents`]: the agent executables this host can upload, per platform;
//! - [`bootstrap`]: getting the agent running on the far side of an ssh
//!   channel or a privilege change, and [`upload`]: sending it there;
//! - [`handshake`]: a new agent's first frames;
//! - [`lines`]: remote text split into lines in bounded memory;
//! - [`remote`]: asking an agent to start a hop below itself;
//! - [`tunnel`]: a TCP connection made by an agent, carrying the next ssh hop;
//! - [`error`]: why a hop failed, named once.
//!
//! The hop itself is [`router::hop::Hop`], the same type from the
//! chain grammar to the wire.

pub mod agents;
pub mod bootstrap;
pub mod error;
pub mod handshake;
pub mod here;
pub mod lines;
pub mod local;
pub mod privilege;
pub mod remote;
#[cfg(feature = "host")]
pub mod ssh;
#[cfg(feature = "host")]
pub mod tunnel;
pub mod upload;
