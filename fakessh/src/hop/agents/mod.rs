//! The agents this host can upload: one static executable per platform
//! (the remote's `uname -sm`), picked by what the remote answers.
//!
//! Where they come from, first found wins for a platform:
//!
//! 1. `--agent PLATFORM=PATH`;
//! 2. an agents directory, `linux-MACHINE/mitogen-fakessh` in it (as
//!    `./build-agents` lays them out): `$MITOGEN_FAKESSH_AGENTS`, then
//!    `target/agents` next to a build tree's executable, then
//!    `lib/mitogen-fakessh/agents` next to an installed one, then
//!    `${XDG_DATA_HOME:-~/.local/share}/mitogen-fakessh/agents`
//!    ([`discover`], host only);
//! 3. this executable itself, for its own platform (linked against the C
//!    library it was built with, so a remote needs that one or newer).
//!
//! An agent from a directory is used only if nobody but root or this user
//! could replace it: it and every directory above it belong to one of them
//! and are writable by nobody else (a sticky directory of root's, like
//! /tmp, excepted). What is uploaded runs on every host reached.
//!
//! An agent other than this executable must carry this build's
//! [`BUILD_STAMP`](crate::roles::BUILD_STAMP): one built from other
//! sources may speak another protocol, and is passed over with a warning.
//!
//! An agent goes over the wire gzip'd: `mitogen-fakessh.gz` beside it if
//! its gzip trailer (CRC-32 and size) matches the agent, else compressed
//! here the first time it is needed.

mod agent;
#[cfg(feature = "host")]
mod discover;

pub use agent::{AGENTS_ENV, Agent, AgentError, Agents, Image, Source, this_platform};
#[cfg(feature = "host")]
pub use discover::{AgentFlag, discover, print_list};
