//! `ssh:` hops: an in-process russh client that verifies the host key,
//! authenticates, bootstraps our agent on the remote and hands its channel
//! to the router as a transport.
//!
//! Credentials never leave the host: when an ssh hop follows another hop,
//! the previous agent only opens the TCP connection (a tunnel session) and
//! the SSH handshake runs here, over that tunnel.
//!
//! - ssh_config(5) comes from the `ssh-config` crate;
//! - [`direct`]: how a chain's first ssh hop reaches its server (TCP,
//!   ProxyCommand through [`proxy`], ProxyJump);
//! - [`connect`]: key exchange, host key ([`hostkey`], [`known_hosts`]) and
//!   authentication ([`auth`], [`identity`], [`key_policy`]);
//! - [`agent`]: the agent started over a session channel ([`transport`],
//!   [`packets`]);
//! - [`lanes`]: more channels toward the agent where one channel's
//!   window limits a long path;
//! - [`algorithms`]: the user's crypto policy as what russh offers;
//! - [`error`]: why an ssh hop failed.

pub mod agent;
mod algorithms;
mod auth;
pub mod connect;
pub mod direct;
pub mod error;
mod hostkey;
mod identity;
mod key_policy;
pub mod known_hosts;
pub mod lanes;
mod packets;
mod proxy;
mod transport;

pub use connect::SshSettings;
pub use direct::Jumps;
pub use error::SshError;
