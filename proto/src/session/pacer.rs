//! How much of a session's stdin the sending end puts in flight: its own
//! window, within the credit the command end granted.
//!
//! The granted window bounds memory at the command end; this one finds the
//! path's bandwidth-delay product, from the only end that sees both when a
//! byte left and when its credit came back. It works like TCP's slow start
//! with HyStart's delay check (RFC 9406), and drains as BBR does:
//!
//! - **Slow start.** While the window holds the stream back (or did in the
//!   round trip before, whose credit is coming back), every byte credited
//!   back adds a byte to it: it doubles per round trip.
//! - **Round trips are timed**, about eight per window: from sending a
//!   marked byte to its credit. The least time seen is the path's own round
//!   trip. When a timing exceeds it by the threshold ([`queue_threshold`],
//!   an eighth of it, 4 to 8 ms), a queue is building on the way: at the
//!   bottleneck, in the SSH channels, or ours. Slow start ends at the first
//!   two such timings in a row of bytes that left paced.
//! - **On a queue, the window drains**: down to what the path delivered in
//!   its own round trip (in slow start the most it delivered while a marked
//!   byte was on its way, since slow start began; after it, what came back
//!   during the round), plus half the threshold's worth of queue, never
//!   below the first window. Slow start is over.
//! - **After slow start** it grows by a 32nd per round trip while it holds
//!   the stream back and the queue stays within half the threshold, and
//!   drains again on a queue. A window that did not hold the stream back
//!   (the reader had nothing to send) judges nothing.
//! - **When the path changes** (a hop's lanes joined: more SSH channels)
//!   slow start begins again, with no timing from the old path.
//! - **What goes out is paced** ([`StdinPacer::ready_at`], [`super::pace`]):
//!   the window (or the grant, if smaller) is spread over the path's round
//!   trip. Without it, slow start sent two bytes for each credited back at
//!   once: twice the link's rate for as long as the credit of a window
//!   took to come back. That queued up to 55 ms at the
//!   bottleneck in front of every other session of the hop (a new
//!   `ssh h true` took 206 ms at 150 ms, `fakessh-bench fat`). Slow start
//!   still overshoots where the product is below [`MAX_SESSION_WINDOW`]:
//!   a timing shows a queue a round trip after it began, and the window
//!   doubles meanwhile (at 50 ms and 1 Gbit/s, about a round trip of queue
//!   for a round trip, before the probes of the bench begin).
//!
//! It grows only on round trips of at least [`MIN_TUNED_RTT`] (on loopback
//! the first window covers the product) and never beyond
//! [`MAX_SESSION_WINDOW`]. What it counts is credit ([`super::frame_cost`]),
//! as the granted window does.
//!
//! No clock is read here: the driver passes the time in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::autotune::MIN_TUNED_RTT;
use super::credit::{MAX_SESSION_WINDOW, SESSION_WINDOW};
use super::pace::Pace;

const INITIAL: u64 = SESSION_WINDOW as u64;
const MAX: u64 = MAX_SESSION_WINDOW as u64;

/// How much longer than the path's round trip a round trip may take before
/// a queue is said to build: an eighth of it, 4 to 8 ms. RFC 9406 allows
/// up to 16 ms; what a queue costs is the same at any round trip (a new
/// session on the same hop waits behind it: issue 28 allows 20 ms), so
/// long paths get no more of it.
pub fn queue_threshold(base: Duration) -> Duration {
    (base / 8).clamp(Duration::from_millis(4), Duration::from_millis(8))
}

/// Marks timed at once at most: about eight per window.
const MARKS: usize = 16;

/// One round trip of the stream: from when the credit for what was in
/// flight at its start began to come back until all of it came back.
#[derive(Clone, Copy, Debug)]
struct Round {
    /// Credit sent by the start: the round ends once this much came back.
    end: u64,
    started_at: Instant,
    acked_at_start: u64,
    /// The least round trip timed during it, and how many were.
    min_rtt: Option<Duration>,
    samples: u32,
}

/// A byte being timed.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// The credit total once it is back.
    at: u64,
    sent_at: Instant,
    /// Credit back by the time it left: what came back in between is what
    /// the path delivered in its round trip.
    acked_then: u64,
    /// It left paced: a queue it saw was not one its own burst built
    /// (before the path's round trip is known, the first window goes out
    /// at once).
    paced: bool,
}

/// Round trips timed in a row that must all show a queue to end slow
/// start: about half a window's worth.
const QUEUED_IN_A_ROW: usize = 2;

/// The sending end's window for one stream.
#[derive(Clone, Debug)]
pub struct StdinPacer {
    window: u64,
    slow_start: bool,
    /// The least round trip seen: the path's own.
    base_rtt: Option<Duration>,
    /// Credit sent in all, and credited back.
    sent: u64,
    acked: u64,
    round: Option<Round>,
    /// Bytes being timed, at most [`MARKS`].
    marks: VecDeque<Mark>,
    /// The last round trips timed, at most [`QUEUED_IN_A_ROW`].
    recent: VecDeque<Duration>,
    /// The most the path delivered per second, as timed since slow start
    /// began (each mark: what came back while it was on its way).
    delivery_rate: f64,
    /// The window held the stream back during this round trip, and during
    /// the one before (the credit coming back now is for what left then).
    limited: bool,
    limited_before: bool,
    pace: Pace,
    /// The window the command end granted ([`StdinPacer::set_granted`]):
    /// the pace never counts on more in flight.
    granted: u64,
}

impl Default for StdinPacer {
    fn default() -> Self {
        StdinPacer::new()
    }
}

impl StdinPacer {
    pub fn new() -> StdinPacer {
        StdinPacer {
            window: INITIAL,
            slow_start: true,
            base_rtt: None,
            sent: 0,
            acked: 0,
            round: None,
            marks: VecDeque::with_capacity(MARKS),
            recent: VecDeque::with_capacity(QUEUED_IN_A_ROW),
            delivery_rate: 0.0,
            limited: false,
            limited_before: false,
            pace: Pace::default(),
            granted: u64::MAX,
        }
    }

    /// What may be in flight now.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// The path's round trip as far as measured.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt
    }

    /// A round trip another part of the session measured (the output
    /// streams time the start): an upper bound of the path's.
    pub fn measured(&mut self, rtt: Duration) {
        self.base_rtt = Some(self.base_rtt.map_or(rtt, |b| b.min(rtt)));
    }

    /// The most to send now, with `granted` bytes of credit available and
    /// `in_flight` in flight.
    pub fn sendable(&self, granted: usize, in_flight: u64) -> usize {
        let room = self.window.saturating_sub(in_flight);
        granted.min(room.min(usize::MAX as u64) as usize)
    }

    /// The stream waits for the window (or the grant): it is the limit.
    pub fn held_back(&mut self) {
        self.limited = true;
    }

    /// Held back on a path long enough to tune for, or grown past what the
    /// command end granted (`granted`; slow start grows the window for a
    /// round trip after the window held the stream back, and then the
    /// grant may be what holds it back): the grant should have room.
    pub fn wants_room(&self, granted: u64) -> bool {
        (self.limited || self.window > granted) && self.tuned()
    }

    /// The command end has granted a window of `window` bytes in all.
    pub fn set_granted(&mut self, window: u64) {
        self.granted = window;
    }

    /// Bytes per second stdin goes out at ([`Pace::rate`]): the window, or
    /// the grant if it is smaller, per round trip. `None`: no pacing.
    fn rate(&self) -> Option<f64> {
        Pace::rate(self.window.min(self.granted), self.base_rtt)
    }

    /// When the next frame may go out, if not now: what went out so far is
    /// ahead of the pace.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        self.pace.ready_at(self.rate(), now)
    }

    /// `cost` more credit went out now.
    pub fn sent(&mut self, cost: u64, now: Instant) {
        self.pace.sent(cost, self.rate(), now);
        self.sent += cost;
        let spacing = self.window / 8;
        let due = self
            .marks
            .back()
            .is_none_or(|mark| self.sent >= mark.at + spacing);
        if due && self.marks.len() < MARKS {
            self.marks.push_back(Mark {
                at: self.sent,
                sent_at: now,
                acked_then: self.acked,
                paced: self.rate().is_some(),
            });
        }
        if self.round.is_none() {
            self.round = Some(self.new_round(now));
        }
    }

    fn new_round(&self, now: Instant) -> Round {
        Round {
            end: self.sent,
            started_at: now,
            acked_at_start: self.acked,
            min_rtt: None,
            samples: 0,
        }
    }

    /// The lanes toward the command end changed: the path may carry more.
    /// The marks timed on the old path no longer count (the least round
    /// trip seen does: the path is as long as it was).
    pub fn path_changed(&mut self) {
        self.slow_start = true;
        self.marks.clear();
        self.recent.clear();
        self.delivery_rate = 0.0;
        self.round = None;
    }

    /// Credit came back: `in_flight` is what remains in flight now. The
    /// window after it.
    pub fn credited(&mut self, in_flight: u64, now: Instant) -> u64 {
        let acked = self.sent.saturating_sub(in_flight);
        let newly = acked.saturating_sub(self.acked);
        self.acked = self.acked.max(acked);
        let limited = self.limited || self.limited_before;
        if newly > 0 && self.slow_start && limited && self.tuned() {
            self.window = (self.window + newly).min(MAX);
        }
        while let Some(&mark) = self.marks.front() {
            if mark.at > self.acked {
                break;
            }
            self.marks.pop_front();
            let rtt = now.saturating_duration_since(mark.sent_at);
            if !rtt.is_zero() {
                let rate = (self.acked - mark.acked_then) as f64 / rtt.as_secs_f64();
                self.delivery_rate = self.delivery_rate.max(rate);
            }
            self.timed(rtt, mark.paced, now);
        }
        if let Some(round) = self.round.filter(|r| self.acked >= r.end) {
            self.end_round(round, now);
        }
        self.window
    }

    /// The path's round trip is long enough to tune for
    /// ([`MIN_TUNED_RTT`]).
    pub fn tuned(&self) -> bool {
        self.base_rtt.is_some_and(|b| b >= MIN_TUNED_RTT)
    }

    /// One round trip timed: in slow start, [`QUEUED_IN_A_ROW`] in a row
    /// above the path's by the threshold end it. (The least of a whole
    /// round saw the queue a round trip later: the round's first marks
    /// left before it built, and slow start doubled the window meanwhile.)
    fn timed(&mut self, rtt: Duration, paced: bool, now: Instant) {
        if rtt.is_zero() {
            return;
        }
        self.measured(rtt);
        if paced {
            if self.recent.len() == QUEUED_IN_A_ROW {
                self.recent.pop_front();
            }
            self.recent.push_back(rtt);
        }
        let Some(round) = self.round.as_mut() else {
            return;
        };
        round.min_rtt = Some(round.min_rtt.map_or(rtt, |m| m.min(rtt)));
        round.samples += 1;
        let recent = self.recent.iter().min().copied();
        if self.slow_start
            && (self.limited || self.limited_before)
            && self.recent.len() == QUEUED_IN_A_ROW
            && self.queued(recent)
        {
            self.drain(now);
            self.slow_start = false;
        }
    }

    /// `least`, the least of some round trips, shows a queue on the way.
    fn queued(&self, least: Option<Duration>) -> bool {
        match (self.base_rtt, least) {
            (Some(base), Some(min)) if base >= MIN_TUNED_RTT => min > base + queue_threshold(base),
            _ => false,
        }
    }

    /// What the path delivered per second during `round`, so far.
    fn round_rate(&self, round: Round, now: Instant) -> Option<f64> {
        let elapsed = now.saturating_duration_since(round.started_at);
        let delivered = self.acked - round.acked_at_start;
        (!elapsed.is_zero()).then(|| delivered as f64 / elapsed.as_secs_f64())
    }

    /// Down to what the path delivers in its own round trip at `rate`
    /// bytes per second, and half the threshold's worth of queue, never
    /// below the first window.
    fn drain_to(&mut self, rate: f64) {
        let Some(base) = self.base_rtt else {
            return;
        };
        let product = rate * base.as_secs_f64();
        let queue = rate * queue_threshold(base).as_secs_f64() / 2.0;
        let drained = (product + queue) as u64;
        self.window = self.window.min(drained).max(INITIAL);
    }

    /// Slow start saw a queue: down to the most the path delivered since
    /// it began (the queue it saw was built by the latest of it).
    fn drain(&mut self, now: Instant) {
        let rate = match self.round {
            Some(round) if self.delivery_rate == 0.0 => self.round_rate(round, now),
            _ => Some(self.delivery_rate),
        };
        if let Some(rate) = rate {
            self.drain_to(rate);
        }
    }

    fn end_round(&mut self, round: Round, now: Instant) {
        let limited = std::mem::take(&mut self.limited);
        self.limited_before = limited;
        self.round = (self.sent > self.acked).then(|| self.new_round(now));
        if self.slow_start || !self.tuned() {
            return;
        }
        if limited && self.queued(round.min_rtt) {
            if let Some(rate) = self.round_rate(round, now) {
                self.drain_to(rate);
            }
        } else if limited && self.queue_short(round) {
            self.window = (self.window + self.window / 32).min(MAX);
        }
    }

    /// The least round trip of `round` is within half the threshold of the
    /// path's: room to grow.
    fn queue_short(&self, round: Round) -> bool {
        match (self.base_rtt, round.min_rtt) {
            (Some(base), Some(min)) => min <= base + queue_threshold(base) / 2,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
