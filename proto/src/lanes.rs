//! Lanes: more SSH channels carrying one stream's frames toward an agent,
//! for a path where one channel's window is the limit.
//!
//! A stock sshd gives each channel a 2 MiB window (OpenSSH's
//! `CHAN_SES_WINDOW_DEFAULT`), so one channel moves at most 2 MiB per round
//! trip toward the server: 13 MiB/s at 150 ms, whatever the link. Every
//! frame the host sends an ssh hop's agent crosses that window. With lanes,
//! the host opens more channels on the same connection into a directory
//! that only the agent's account can enter: each a connection to the
//! agent's Unix socket there (`direct-streamlocal`, no process on the
//! server), or where the server forbids that, a session running `cat` into
//! one of the agent's FIFOs there. The frames then go round the lanes in
//! turn, one frame per lane, and the agent reads them in the same turn.
//! Order is the turn's: no sequence numbers, no reordering buffer, and a
//! lane that lags holds the others back instead of overtaking them.
//!
//! How lanes join, in order:
//!
//! 0. once the agent is attached, the host times a request for no lanes,
//!    which the agent refuses at once: below [`MIN_LANES_RTT`] one window
//!    already covers the path, and nothing more is asked;
//! 1. otherwise, at once, the host asks the agent for `n` lanes
//!    ([`LanesRequest`]); the agent
//!    makes a private directory with a socket ([`SOCKET_NAME`], unless its
//!    path is too long) and `n` FIFOs, and answers where, with a random
//!    token ([`LanesReply`]). This round trip decides too (less the time
//!    the agent says it took): below [`MIN_LANES_RTT`] the host joins none;
//! 2. once a push is held back by its window, the host opens a channel
//!    per lane to the socket ([`lane_socket`]),
//!    each sending [`socket_hello`] first; if the server opens none of
//!    them, a session channel per lane running [`lane_command`], each
//!    writing the token first. The server may refuse some (`MaxSessions`),
//!    and the host asks the agent to join those that opened ([`JoinLanes`]);
//! 3. the agent takes the token from each (a lane that does not deliver it
//!    in time fails the join; a socket's peer must be its own account),
//!    removes the directory, and answers;
//! 4. the host sends the [`switch_frame`] on the stream as it is; the
//!    frame after it goes on lane 0 (the first channel), the next on lane
//!    1, and so on round all of them ([`Turn`]).
//!
//! Only the stream's two ends act on the switch: the host's writer, which
//! holds the lanes' channels, and the agent's reader of its parent stream,
//! which holds the lanes' ends, and only on the switch frame for that agent
//! ([`is_switch_for`]); any other frame with its handle (a dead reply that
//! a remote asked for on it) passes on as any frame does. A switch from
//! anyone but the host, or without its lanes joined, is a broken stream
//! ([`LanesError`]). A lane that
//! ends ends the whole stream, as the first channel's end does: its
//! frames are never skipped.

use serde::{Deserialize, Serialize};

use crate::frame::{Encoding, Frame, Header};
use crate::message::{ContextId, HOST_ID, handle};

/// The most lanes besides the first channel. 12 channels of 2 MiB carry
/// 24 MiB per round trip toward sshd (1 Gbit/s at 200 ms), more than a
/// session's largest window ([`crate::session::MAX_SESSION_WINDOW`]): a
/// full window spread over them leaves each room in its own, so a frame's
/// turn seldom waits for sshd to open a lane's window again. (With 8, a
/// 16 MiB window filled every lane's, and a frame whose turn came waited:
/// `ssh h true` during a push at 150 ms took up to 243 ms.) Lanes through
/// `cat` are sessions, and sshd's `MaxSessions` (10 by default) refuses
/// those past it.
pub const MAX_EXTRA_LANES: u8 = 11;

/// Round trips shorter than this get no lanes: one 2 MiB window per 5 ms
/// is 400 MiB/s.
pub const MIN_LANES_RTT: std::time::Duration = std::time::Duration::from_millis(5);

/// Bytes of the token each lane carries first.
pub const TOKEN_LEN: usize = 16;

/// The agent's socket for lanes, in the directory it answers with.
pub const SOCKET_NAME: &str = "lanes.sock";

/// Host to agent on [`handle::LANES`]: make the socket and `lanes` FIFOs
/// (1 to [`MAX_EXTRA_LANES`]). A request for none is refused at once,
/// with nothing made: the host times it as the round trip.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LanesRequest {
    pub lanes: u8,
}

/// The agent's answer to a [`LanesRequest`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum LanesReply {
    /// The FIFOs are `dir/1` to `dir/n`, and the socket `dir/`[`SOCKET_NAME`]
    /// if `socket` (its path may be too long to bind); each lane sends
    /// `token` first.
    Prepared {
        dir: String,
        token: Vec<u8>,
        socket: bool,
        /// Microseconds the agent took to make them: not part of the round
        /// trip that decides.
        took_us: u32,
    },
    /// No lanes: why (the host goes on with one channel).
    Refused(String),
}

/// Host to agent on [`handle::LANES_JOIN`]: the lanes (by number, from 1)
/// that have a channel, in the turn's order (none: the agent drops what it
/// made), and whether they are connections to the socket (else the FIFOs
/// of those numbers). A server that allows fewer channels refuses some,
/// not always the last ones. Answered `Result<(), String>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinLanes {
    pub lanes: Vec<u8>,
    pub socket: bool,
}

impl JoinLanes {
    /// Whether the lanes named are FIFOs that were made (`1..=made`), each
    /// once, in increasing order.
    pub fn check(&self, made: usize) -> Result<(), LanesError> {
        let in_range = self.lanes.iter().all(|&k| k >= 1 && usize::from(k) <= made);
        let increasing = self.lanes.windows(2).all(|w| w[0] < w[1]);
        match in_range && increasing {
            true => Ok(()),
            false => Err(LanesError::BadJoin(self.lanes.clone(), made)),
        }
    }
}

/// A switch or a lane that breaks the rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LanesError {
    #[error("the agent named an unsafe lane directory ({0:?})")]
    UnsafeDir(String),
    #[error("a lane switch for {lanes} lanes came with {joined} lanes joined")]
    SwitchWithoutLanes { lanes: u8, joined: usize },
    #[error("a lane switch from context {src} for context {dst}")]
    ForeignSwitch { src: ContextId, dst: ContextId },
    #[error("a lane switch after lanes were already switched on")]
    SwitchedTwice,
    #[error("asked to join lanes {0:?} of {1} made")]
    BadJoin(Vec<u8>, usize),
}

/// `dir` came from the agent: only an absolute path of letters, digits
/// and `/._-` is used.
fn checked_dir(dir: &str) -> Result<&str, LanesError> {
    let safe = dir.starts_with('/')
        && dir.len() <= 256
        && !dir.split('/').any(|part| part == "..")
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    match safe {
        true => Ok(dir),
        false => Err(LanesError::UnsafeDir(dir.to_string())),
    }
}

/// The command a lane's session channel runs: `cat` from the channel into
/// FIFO `k` of `dir` (a checked path goes in the command line).
pub fn lane_command(dir: &str, k: u8) -> Result<String, LanesError> {
    Ok(format!("exec cat >'{}/{k}'", checked_dir(dir)?))
}

/// The socket a lane's `direct-streamlocal` channel connects to.
pub fn lane_socket(dir: &str) -> Result<String, LanesError> {
    Ok(format!("{}/{SOCKET_NAME}", checked_dir(dir)?))
}

/// What a lane to the socket sends first: its number, then the token.
pub fn socket_hello(k: u8, token: &[u8]) -> Vec<u8> {
    let mut hello = Vec::with_capacity(1 + token.len());
    hello.push(k);
    hello.extend_from_slice(token);
    hello
}

/// The frame after which the stream to `agent` goes round `lanes` extra
/// lanes (and the first channel).
pub fn switch_frame(agent: ContextId, lanes: u8) -> Frame {
    Frame {
        header: Header {
            dst: agent,
            src: HOST_ID,
            auth: HOST_ID,
            handle: handle::LANES_SWITCH,
            reply_to: 0,
        },
        encoding: Encoding::Bytes,
        payload: bytes::Bytes::copy_from_slice(&[lanes]),
    }
}

/// Whether `frame` is the switch of the stream to `agent`: the host's
/// switch frame for that agent, and nothing else that carries its handle
/// (a dead reply to a context that named [`handle::LANES_SWITCH`] as its
/// reply handle carries it too, and passes on as any frame: a switch is
/// never taken from what a remote can make the host send).
pub fn is_switch_for(frame: &Frame, agent: ContextId) -> bool {
    let h = &frame.header;
    h.handle == handle::LANES_SWITCH && h.dst == agent && h.reply_to == 0
}

/// The extra lanes a switch frame announces.
pub fn switch_lanes(frame: &Frame) -> u8 {
    frame.payload.first().copied().unwrap_or(0)
}

/// The agent `me`'s reader of its parent stream got the switch for it
/// ([`is_switch_for`]) with `joined` lanes waiting: whether to switch.
pub fn check_switch(frame: &Frame, me: ContextId, joined: usize) -> Result<u8, LanesError> {
    let lanes = switch_lanes(frame);
    let h = &frame.header;
    if h.dst != me || h.src != HOST_ID || h.auth != HOST_ID || frame.payload.len() != 1 {
        return Err(LanesError::ForeignSwitch {
            src: h.src,
            dst: h.dst,
        });
    }
    if lanes == 0 || usize::from(lanes) != joined {
        return Err(LanesError::SwitchWithoutLanes { lanes, joined });
    }
    Ok(lanes)
}

/// Whose turn it is: the lane of the next frame, round all of them.
#[derive(Clone, Debug)]
pub struct Turn {
    lanes: usize,
    next: usize,
}

impl Default for Turn {
    fn default() -> Self {
        Turn { lanes: 1, next: 0 }
    }
}

impl Turn {
    /// The lane for the next frame.
    pub fn take(&mut self) -> usize {
        let lane = self.next;
        self.next = (self.next + 1) % self.lanes;
        lane
    }

    /// `extra` lanes joined the first: the next frame goes on lane 0.
    pub fn switch(&mut self, extra: usize) -> Result<(), LanesError> {
        if self.lanes > 1 {
            return Err(LanesError::SwitchedTwice);
        }
        self.lanes = 1 + extra;
        self.next = 0;
        Ok(())
    }

    pub fn lanes(&self) -> usize {
        self.lanes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_command_takes_only_a_plain_absolute_directory() {
        assert_eq!(
            lane_command("/tmp/mitogen-fakessh-lanes-Ab3_x.9", 3).unwrap(),
            "exec cat >'/tmp/mitogen-fakessh-lanes-Ab3_x.9/3'"
        );
        for bad in [
            "tmp/x",
            "/tmp/x'; rm -rf ~; '",
            "/tmp/$(id)",
            "/tmp/a b",
            "/tmp/../etc",
            "/tmp/\u{1b}[2J",
            "",
        ] {
            assert!(lane_command(bad, 1).is_err(), "{bad:?}");
        }
        assert!(lane_command(&format!("/{}", "a".repeat(300)), 1).is_err());
        assert_eq!(
            lane_socket("/tmp/mitogen-fakessh-lanes-Ab3_x.9").unwrap(),
            "/tmp/mitogen-fakessh-lanes-Ab3_x.9/lanes.sock"
        );
        assert!(lane_socket("/tmp/../etc").is_err());
        assert!(lane_socket("/tmp/a b").is_err());
        assert_eq!(socket_hello(3, &[9, 9]), [3, 9, 9]);
    }

    #[test]
    fn a_switch_counts_only_from_the_host_for_this_agent_with_its_lanes_joined() {
        let f = switch_frame(7, 3);
        assert!(is_switch_for(&f, 7));
        assert!(!is_switch_for(&f, 8));
        assert_eq!(switch_lanes(&f), 3);
        assert_eq!(check_switch(&f, 7, 3), Ok(3));
        assert!(matches!(
            check_switch(&f, 8, 3),
            Err(LanesError::ForeignSwitch { .. })
        ));
        // A dead reply on the switch's handle, which a remote context can
        // make the host send by naming that handle as its reply handle, is
        // no switch, for it or for anyone on the way.
        let dead = Frame::dead(HOST_ID, 7, handle::LANES_SWITCH, "no such handle");
        assert!(!is_switch_for(&dead, 7));
        let dead = Frame::dead(HOST_ID, 9, handle::LANES_SWITCH, "no such handle");
        assert!(!is_switch_for(&dead, 7) && !is_switch_for(&dead, 9));
        assert!(matches!(
            check_switch(&f, 7, 2),
            Err(LanesError::SwitchWithoutLanes { .. })
        ));
        let mut forged = switch_frame(7, 3);
        forged.header.src = 9;
        assert!(check_switch(&forged, 7, 3).is_err());
        let mut empty = switch_frame(7, 0);
        empty.payload = bytes::Bytes::new();
        assert!(check_switch(&empty, 7, 0).is_err());
    }

    #[test]
    fn a_join_names_only_lanes_that_were_made_once_each_in_order() {
        let join = |lanes: &[u8]| JoinLanes {
            lanes: lanes.to_vec(),
            socket: false,
        };
        assert!(join(&[]).check(7).is_ok());
        assert!(join(&[1, 2, 5, 7]).check(7).is_ok());
        for bad in [&[0u8][..], &[8], &[2, 2], &[3, 1], &[1, 9]] {
            assert!(join(bad).check(7).is_err(), "{bad:?}");
        }
        assert!(join(&[1]).check(0).is_err());
    }

    #[test]
    fn the_turn_goes_round_every_lane_from_the_first_after_a_switch_once() {
        let mut turn = Turn::default();
        assert_eq!((turn.take(), turn.take()), (0, 0));
        turn.switch(2).unwrap();
        let order: Vec<usize> = (0..7).map(|_| turn.take()).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(turn.switch(1), Err(LanesError::SwitchedTwice));
    }
}
