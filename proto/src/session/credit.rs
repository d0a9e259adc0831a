//! Credit accounting for one byte stream of a session, both ends.
//!
//! The receiver of a stream grants credit as it writes data out; the sender
//! never has more than the granted credit in flight. That bounds every
//! buffer between the two ends, whatever their relative speed: the flow
//! control Mitogen's fakessh never had.
//!
//! A frame costs its length, but at least [`MIN_FRAME_COST`]: so a window
//! bounds the number of frames in flight as well as their bytes, and every
//! queue a session's frames wait in is bounded by construction (a sender
//! that dribbles one byte per frame cannot queue a million frames).
//!
//! Both sides check the other: a receiver refuses data beyond the credit it
//! granted, a sender refuses credit for more than it has in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ProtocolError;

/// Credit each end of a session starts with, per direction and stream. It
/// bounds the bytes (and, through [`MIN_FRAME_COST`], the frames) in flight
/// per stream, and with them every queue. One window per round trip is a
/// stream's top speed: 2 MiB, OpenSSH's channel window, keeps up with
/// OpenSSH at 50 ms RTT (1 MiB capped a stream at ~20 MiB/s there).
pub const SESSION_WINDOW: u32 = 2 << 20;
/// The most a stream's window may grow to (see [`super::autotune`]): what
/// one stream may hold in flight on a long fat link, and so the most the
/// receiving end buffers for it. 16 MiB is 1
/// Gbit/s at 134 ms, and keeps host and agent under 64 MiB with one such
/// stream running.
pub const MAX_SESSION_WINDOW: u32 = 16 << 20;
/// Largest data chunk put in one frame.
pub const DATA_CHUNK: usize = 128 << 10;
/// Frames one session may have queued at a receiver: a full window of the
/// smallest frames on each of three streams (each may have grown to
/// [`MAX_SESSION_WINDOW`]), and room for control frames.
pub const SESSION_QUEUE: usize = (3 * MAX_SESSION_WINDOW / MIN_FRAME_COST) as usize + 256;

/// What the command ends of one agent may grant their stdin, all together,
/// beyond their first windows: two streams grown to the max. Each
/// session's stdin is bounded by its window; this bounds the sum, so that
/// many sessions pushing at once through a slow consumer hold at most this
/// much more at the agent ([`GrowthBudget`]).
pub const STDIN_GROWTH_BUDGET: u64 = 2 * (MAX_SESSION_WINDOW - SESSION_WINDOW) as u64;

/// Bytes of window growth shared by the sessions of one process.
#[derive(Debug)]
pub struct GrowthBudget {
    left: AtomicU64,
}

impl GrowthBudget {
    pub const fn new(bytes: u64) -> GrowthBudget {
        GrowthBudget {
            left: AtomicU64::new(bytes),
        }
    }

    /// Take up to `want`: what was taken.
    fn take(&self, want: u64) -> u64 {
        let mut got = 0;
        let _ = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                got = want.min(left);
                Some(left - got)
            });
        got
    }

    fn give_back(&self, bytes: u64) {
        self.left.fetch_add(bytes, Ordering::AcqRel);
    }

    /// What is left to take.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire)
    }
}

/// One session's share of a [`GrowthBudget`], given back when the last
/// holder (the session, and its clones) is dropped.
#[derive(Debug)]
pub struct GrowthHold {
    budget: &'static GrowthBudget,
    held: AtomicU64,
}

impl GrowthHold {
    pub fn new(budget: &'static GrowthBudget) -> Arc<GrowthHold> {
        Arc::new(GrowthHold {
            budget,
            held: AtomicU64::new(0),
        })
    }

    /// Up to `want` more: what was granted.
    pub fn take(&self, want: u64) -> u64 {
        let got = self.budget.take(want);
        self.held.fetch_add(got, Ordering::AcqRel);
        got
    }
}

impl Drop for GrowthHold {
    fn drop(&mut self) {
        self.budget.give_back(*self.held.get_mut());
    }
}

/// The least credit a data frame costs, however short it is.
pub const MIN_FRAME_COST: u32 = 512;

/// What a data frame of `len` bytes costs in credit.
pub fn frame_cost(len: usize) -> u32 {
    (len.min(u32::MAX as usize) as u32).max(MIN_FRAME_COST)
}

/// The sending end of one stream: how much may be sent now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendCredit {
    available: u64,
    in_flight: u64,
}

impl SendCredit {
    /// A fresh stream with `window` bytes of credit.
    pub fn new(window: u32) -> SendCredit {
        SendCredit {
            available: u64::from(window),
            in_flight: 0,
        }
    }

    /// Credit spent and not yet granted back.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Credit available now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// The longest frame that may be sent now (0: wait for credit).
    pub fn sendable(&self, max: usize) -> usize {
        if self.available < u64::from(MIN_FRAME_COST) {
            return 0;
        }
        (self.available.min(max as u64)) as usize
    }

    /// Charge a frame of `len` bytes, if the credit is there.
    pub fn take(&mut self, len: usize) -> bool {
        let cost = u64::from(frame_cost(len));
        if cost > self.available {
            return false;
        }
        self.available -= cost;
        self.in_flight += cost;
        true
    }

    /// The receiver wrote `n` out: that much may be sent again. More than is
    /// in flight is a lie, and refused.
    pub fn grant(&mut self, n: u32) -> Result<(), ProtocolError> {
        let n = u64::from(n);
        if n > self.in_flight {
            return Err(ProtocolError::CreditBeyondSent {
                granted: n,
                in_flight: self.in_flight,
            });
        }
        self.in_flight -= n;
        self.available += n;
        Ok(())
    }

    /// The receiver raised the window by `n`: that much more may be in
    /// flight. Beyond [`MAX_SESSION_WINDOW`] it is refused.
    pub fn grow(&mut self, n: u32) -> Result<(), ProtocolError> {
        let window = self.available + self.in_flight + u64::from(n);
        if window > u64::from(MAX_SESSION_WINDOW) {
            return Err(ProtocolError::WindowBeyondMax {
                window,
                max: MAX_SESSION_WINDOW,
            });
        }
        self.available += u64::from(n);
        Ok(())
    }
}

/// The receiving end of one stream: how much the sender may still send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvCredit {
    window: u64,
    /// Received and not yet credited back.
    outstanding: u64,
    /// Credit still to keep back, once released, to lower the window.
    withholding: u64,
    /// Credit kept back so far: the sender still counts it in flight.
    kept: u64,
}

/// How a receiver raises its window ([`RecvCredit::grow_to`]): credit it
/// had kept back, given back first, then growth to announce. The sender's
/// window (granted in all) never passes [`MAX_SESSION_WINDOW`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Raise {
    pub credit: u32,
    pub grow: u32,
}

impl RecvCredit {
    pub fn new(window: u32) -> RecvCredit {
        RecvCredit {
            window: u64::from(window),
            outstanding: 0,
            withholding: 0,
            kept: 0,
        }
    }

    /// A frame of `len` bytes arrived. Beyond the granted window it is an
    /// overrun: the sender ignored flow control.
    pub fn receive(&mut self, len: usize) -> Result<u32, ProtocolError> {
        let cost = frame_cost(len);
        if self.outstanding + u64::from(cost) > self.window {
            return Err(ProtocolError::Overrun {
                len,
                window: self.window,
                outstanding: self.outstanding,
            });
        }
        self.outstanding += u64::from(cost);
        Ok(cost)
    }

    /// A frame that cost `cost` was written out (or dropped): the credit to
    /// grant back.
    /// While the window is being lowered ([`RecvCredit::shrink_to`]), that
    /// credit is kept back instead, and the window is that much smaller.
    pub fn release(&mut self, cost: u32) -> u32 {
        let cost = u64::from(cost).min(self.outstanding);
        self.outstanding -= cost;
        let kept = cost.min(self.withholding);
        self.withholding -= kept;
        self.kept += kept;
        self.window -= kept;
        (cost - kept) as u32
    }

    /// Credit received and not yet given back.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Credit kept back, that the sender still counts in flight.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// What the sender may have in flight.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Raise the window to `to` (at most [`MAX_SESSION_WINDOW`]; not
    /// lowered, though a lowering under way stops at `to`): what to give
    /// back and announce, nothing if it does not grow.
    pub fn grow_to(&mut self, to: u64) -> Raise {
        let to = to.min(u64::from(MAX_SESSION_WINDOW));
        if to <= self.window {
            self.withholding = self.withholding.min(self.window - to);
            return Raise::default();
        }
        self.withholding = 0;
        let by = to - self.window;
        self.window = to;
        // The sender's window is this one and what was kept back: give
        // that back first, so the sender's stays within the max.
        let credit = by.min(self.kept);
        self.kept -= credit;
        Raise {
            credit: credit as u32,
            grow: (by - credit) as u32,
        }
    }

    /// Lower the window to `to`: the credit of what is written next is
    /// kept back until the sender may have only that much in flight.
    /// Nothing is announced, and the sender cannot tell.
    pub fn shrink_to(&mut self, to: u64) {
        self.withholding = self.window.saturating_sub(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_stops_at_the_window_and_resumes_on_credit() {
        let mut send = SendCredit::new(2048);
        assert_eq!(send.sendable(4096), 2048);
        assert!(send.take(1600));
        assert_eq!(
            send.sendable(4096),
            0,
            "448 left is less than a frame costs"
        );
        assert!(!send.take(1));
        send.grant(1600).unwrap();
        assert!(send.take(2000));
    }

    #[test]
    fn tiny_frames_cost_the_minimum() {
        let mut send = SendCredit::new(MIN_FRAME_COST * 4);
        for _ in 0..4 {
            assert!(send.take(1));
        }
        assert!(!send.take(1), "four one-byte frames use a 4-frame window");
        let mut recv = RecvCredit::new(MIN_FRAME_COST * 4);
        for _ in 0..4 {
            assert_eq!(recv.receive(1).unwrap(), MIN_FRAME_COST);
        }
        assert!(recv.receive(1).is_err());
    }

    #[test]
    fn a_receiver_refuses_data_beyond_its_window() {
        let mut recv = RecvCredit::new(4096);
        let cost = recv.receive(4000).unwrap();
        let err = recv.receive(1000).unwrap_err();
        assert!(matches!(err, ProtocolError::Overrun { .. }), "{err}");
        assert_eq!(recv.release(cost), 4000);
        recv.receive(4096).unwrap();
    }

    #[test]
    fn a_window_grows_at_both_ends_up_to_the_max_and_no_further() {
        let mut recv = RecvCredit::new(SESSION_WINDOW);
        let mut send = SendCredit::new(SESSION_WINDOW);
        assert!(send.take(SESSION_WINDOW as usize));
        recv.receive(SESSION_WINDOW as usize).unwrap();
        assert!(recv.receive(1).is_err(), "the window is full");
        let by = recv.grow_to(u64::from(SESSION_WINDOW) * 3).grow;
        assert_eq!(by, 2 * SESSION_WINDOW);
        send.grow(by).unwrap();
        assert_eq!(send.available(), u64::from(by));
        recv.receive(by as usize).unwrap();
        assert_eq!(
            recv.grow_to(1),
            Raise::default(),
            "growing never lowers a window"
        );
        let by = recv.grow_to(u64::MAX).grow;
        assert_eq!(recv.window(), u64::from(MAX_SESSION_WINDOW));
        send.grow(by).unwrap();
        let err = send.grow(1).unwrap_err();
        assert!(
            matches!(err, ProtocolError::WindowBeyondMax { .. }),
            "{err}"
        );
    }

    #[test]
    fn sessions_share_the_growth_budget_and_give_it_back_when_dropped() {
        static BUDGET: GrowthBudget = GrowthBudget::new(10);
        let first = GrowthHold::new(&BUDGET);
        assert_eq!(first.take(7), 7);
        let second = GrowthHold::new(&BUDGET);
        assert_eq!(second.take(7), 3, "only what is left");
        assert_eq!(second.take(1), 0);
        let clone = first.clone();
        drop(first);
        assert_eq!(BUDGET.left(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(BUDGET.left(), 7);
        drop(second);
        assert_eq!(BUDGET.left(), 10);
    }

    #[test]
    fn a_lowered_window_keeps_credit_back_until_the_sender_has_that_much_room() {
        let mut send = SendCredit::new(8000);
        let mut recv = RecvCredit::new(8000);
        recv.shrink_to(5000);
        let mut received = Vec::new();
        for _ in 0..4 {
            assert!(send.take(2000));
            received.push(recv.receive(2000).unwrap());
        }
        assert_eq!(send.sendable(8000), 0);
        // The first 3000 of credit are kept back; after that, all of it.
        let back: Vec<u32> = received.iter().map(|c| recv.release(*c)).collect();
        assert_eq!(back, vec![0, 1000, 2000, 2000]);
        for b in back {
            send.grant(b).unwrap();
        }
        assert_eq!(recv.window(), 5000);
        // The sender has room for the lowered window, and no more.
        assert_eq!(send.sendable(8000), 5000);
        assert!(send.take(5000));
        assert!(recv.receive(5000).is_ok());
        assert!(recv.receive(MIN_FRAME_COST as usize).is_err());
        // Raised again: what was kept back is given back first, and only
        // then does the sender's window grow, never past the max.
        let raise = recv.grow_to(9000);
        assert_eq!(
            raise,
            Raise {
                credit: 3000,
                grow: 1000
            }
        );
        send.grant(raise.credit).unwrap();
        send.grow(raise.grow).unwrap();
        assert_eq!(send.available() + send.in_flight(), 9000);
        let mut recv = RecvCredit::new(MAX_SESSION_WINDOW);
        recv.shrink_to(1000);
        recv.receive(MAX_SESSION_WINDOW as usize).unwrap();
        recv.release(MAX_SESSION_WINDOW);
        let raise = recv.grow_to(u64::MAX);
        assert_eq!(raise.grow, 0, "{raise:?}");
        assert_eq!(recv.window(), u64::from(MAX_SESSION_WINDOW));
        // Growing while still lowering stops the lowering.
        let mut recv = RecvCredit::new(8000);
        recv.shrink_to(2000);
        assert_eq!(recv.grow_to(9000).grow, 1000);
        recv.receive(4000).unwrap();
        assert_eq!(recv.release(4000), 4000);
    }

    #[test]
    fn a_sender_refuses_credit_for_more_than_it_sent() {
        let mut send = SendCredit::new(4096);
        assert!(send.take(1000));
        let err = send.grant(1001).unwrap_err();
        assert!(err.to_string().contains("1001"), "{err}");
        send.grant(1000).unwrap();
        assert!(send.grant(1).is_err(), "nothing is in flight any more");
        assert_eq!(send.available(), 4096);
    }
}
