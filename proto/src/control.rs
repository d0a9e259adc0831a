//! The control socket between the host and its clients (the shims, and
//! `mitogen-fakessh status`, `stop` and `exec`): what each message is, as
//! bytes and back. Sending and receiving, descriptors included, is the
//! drivers' (the shims' `control`, the host's `accept`).
//!
//! One message each way at a time, on a `SOCK_SEQPACKET` socket:
//!
//! ```text
//!  client                                  host
//!    (socket path only) <---------------- Greeting: `+`, or `-` and why
//!    Request: `S` + handover bits ------> (+ descriptors: session socket,
//!                                           then the handed-over stdio)
//!         or `?` (status), `.` (stop) -->
//!    <--------------------------------- Reply: `=` and UTF-8 JSON
//! ```
//!
//! The inherited socket needs no greeting: only the host's own
//! descendants hold it. A socket path may be reached by anyone the
//! directory lets through, so the host checks who connected before it
//! greets (see the host's `accept`), and says why when it refuses.

use crate::text::{sanitize, sanitize_line};

/// The most a greeting may take: a refusal's reason is a line.
pub const GREETING_MAX: usize = 512;
/// The most a reply may take (the JSON of a daemon's status).
pub const REPLY_MAX: usize = 1 << 20;

const SESSION: u8 = b'S';
const STATUS: u8 = b'?';
const STOP: u8 = b'.';
const REPLY: u8 = b'=';
const WELCOME: u8 = b'+';
const REFUSAL: u8 = b'-';

/// Which of a client's standard descriptors follow its session socket in
/// the same message, in the order stdin, stdout, stderr. The host serves
/// those itself, so bulk data does not pass through the shim at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handover {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Handover {
    const STDIN: u8 = 1;
    const STDOUT: u8 = 2;
    const STDERR: u8 = 4;

    fn bits(self) -> u8 {
        (self.stdin as u8 * Self::STDIN)
            | (self.stdout as u8 * Self::STDOUT)
            | (self.stderr as u8 * Self::STDERR)
    }

    fn from_bits(bits: u8) -> Result<Handover, ControlError> {
        if bits & !(Self::STDIN | Self::STDOUT | Self::STDERR) != 0 {
            return Err(ControlError::UnknownHandover(bits));
        }
        Ok(Handover {
            stdin: bits & Self::STDIN != 0,
            stdout: bits & Self::STDOUT != 0,
            stderr: bits & Self::STDERR != 0,
        })
    }

    /// How many descriptors follow the session socket.
    pub fn count(self) -> usize {
        self.bits().count_ones() as usize
    }

    /// Match the descriptors that came after the session socket with the
    /// streams announced, as `[stdin, stdout, stderr]`; a different number
    /// is a broken client.
    pub fn assign<T>(self, fds: Vec<T>) -> Result<[Option<T>; 3], ControlError> {
        if fds.len() != self.count() {
            return Err(ControlError::Mismatch {
                announced: self.count(),
                carried: fds.len(),
            });
        }
        let mut fds = fds.into_iter();
        let mut take = |on: bool| if on { fds.next() } else { None };
        Ok([take(self.stdin), take(self.stdout), take(self.stderr)])
    }
}

/// What a client asks of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Run a session: its socket, and the `Handover`'s descriptors, come
    /// with this message.
    Session(Handover),
    /// A daemon's status, answered with a [`Reply`].
    Status,
    /// End the daemon, its contexts and their agents; answered too.
    Stop,
}

impl Request {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Request::Session(handover) => vec![SESSION, handover.bits()],
            Request::Status => vec![STATUS],
            Request::Stop => vec![STOP],
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Request, ControlError> {
        match bytes {
            // A bare `S`: a session socket and nothing else.
            [SESSION] => Ok(Request::Session(Handover::default())),
            [SESSION, bits] => Ok(Request::Session(Handover::from_bits(*bits)?)),
            [STATUS] => Ok(Request::Status),
            [STOP] => Ok(Request::Stop),
            _ => Err(ControlError::NotARequest(shown(bytes))),
        }
    }
}

/// The host's first message on a connection to its socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    Welcome,
    /// The reason, as one line safe to print (a refusal is printed by the
    /// client as it came).
    Refused(String),
}

impl Greeting {
    /// The message; a reason longer than a greeting may be is cut.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Greeting::Welcome => vec![WELCOME],
            Greeting::Refused(why) => {
                let mut out = vec![REFUSAL];
                out.extend_from_slice(why.as_bytes());
                out.truncate(GREETING_MAX);
                out
            }
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Greeting, ControlError> {
        match bytes {
            [WELCOME] => Ok(Greeting::Welcome),
            [REFUSAL, why @ ..] => Ok(Greeting::Refused(sanitize_line(why))),
            [] => Err(ControlError::Silent),
            _ => Err(ControlError::NotAGreeting),
        }
    }
}

/// The host's answer to [`Request::Status`] or [`Request::Stop`]: JSON,
/// an object with `error` if refused.
pub struct Reply;

impl Reply {
    pub fn encode(json: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + json.len());
        out.push(REPLY);
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// The JSON bytes of a reply.
    pub fn parse(bytes: &[u8]) -> Result<&[u8], ControlError> {
        match bytes.split_first() {
            Some((&REPLY, json)) => Ok(json),
            _ => Err(ControlError::NotAReply),
        }
    }
}

/// A control message that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("a message that is not a request ({0})")]
    NotARequest(String),
    #[error("a session request with unknown handover bits {0:#04b}")]
    UnknownHandover(u8),
    #[error("a session request announces {announced} descriptors but carries {carried}")]
    Mismatch { announced: usize, carried: usize },
    #[error("closed the connection without a word")]
    Silent,
    #[error("answered with something that is not a mitogen-fakessh greeting")]
    NotAGreeting,
    #[error("an answer that is not one")]
    NotAReply,
}

/// The first bytes of a message nobody should have sent, safe to log.
fn shown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    let more = if bytes.len() > head.len() { "..." } else { "" };
    format!("{} bytes: {}{more}", bytes.len(), sanitize(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for stdin in [false, true] {
            for stdout in [false, true] {
                for stderr in [false, true] {
                    let h = Handover {
                        stdin,
                        stdout,
                        stderr,
                    };
                    let r = Request::Session(h);
                    assert_eq!(Request::parse(&r.encode()), Ok(r));
                }
            }
        }
        for r in [Request::Status, Request::Stop] {
            assert_eq!(Request::parse(&r.encode()), Ok(r));
        }
        assert_eq!(
            Request::parse(b"S"),
            Ok(Request::Session(Handover::default()))
        );
    }

    #[test]
    fn broken_requests_are_refused() {
        assert_eq!(
            Request::parse(&[b'S', 8]),
            Err(ControlError::UnknownHandover(8))
        );
        assert!(matches!(
            Request::parse(b"\x1b[2Jhello"),
            Err(ControlError::NotARequest(shown)) if !shown.contains('\x1b')
        ));
        assert!(Request::parse(b"").is_err());
        assert!(Request::parse(b"?x").is_err());
    }

    #[test]
    fn handover_assigns_descriptors_in_order() {
        let h = Handover {
            stdin: true,
            stdout: false,
            stderr: true,
        };
        assert_eq!(h.assign(vec![10, 12]), Ok([Some(10), None, Some(12)]));
        assert_eq!(
            h.assign(vec![10]),
            Err(ControlError::Mismatch {
                announced: 2,
                carried: 1
            })
        );
    }

    #[test]
    fn greetings_round_trip_and_refusals_are_safe_to_print() {
        assert_eq!(
            Greeting::parse(&Greeting::Welcome.encode()),
            Ok(Greeting::Welcome)
        );
        let refused = Greeting::Refused("uid 1000 is not the account".into());
        assert_eq!(Greeting::parse(&refused.encode()), Ok(refused));
        let hostile = Greeting::parse(b"-\x1b]0;owned\x07\nline two").unwrap();
        let Greeting::Refused(why) = hostile else {
            panic!("not a refusal")
        };
        assert!(!why.contains('\x1b') && !why.contains('\n'));
        assert_eq!(Greeting::parse(b""), Err(ControlError::Silent));
        assert_eq!(Greeting::parse(b"SSH-2.0"), Err(ControlError::NotAGreeting));
        let long = Greeting::Refused("x".repeat(4 * GREETING_MAX)).encode();
        assert_eq!(long.len(), GREETING_MAX);
    }

    #[test]
    fn replies_carry_json() {
        assert_eq!(Reply::parse(&Reply::encode("{}")), Ok(&b"{}"[..]));
        assert_eq!(Reply::parse(b"{}"), Err(ControlError::NotAReply));
        assert_eq!(Reply::parse(b""), Err(ControlError::NotAReply));
    }
}
