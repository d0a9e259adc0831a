//! Pacing: what a sending end puts in flight, spread over the round trip.
//!
//! A window is what may be in flight; without pacing, a window that grows
//! (slow start, or credit granted in one piece) goes out at once, as fast
//! as the machine writes. On a long path that burst waits in the
//! bottleneck's queue, in front of every other session of the hop: 4 MiB
//! is 34 ms at 1 Gbit/s. Paced, a window goes out at [`PACING_GAIN`]
//! windows per round trip: a little faster than the window allows, so the
//! window, not the pace, is what holds a stream back.
//!
//! Both sending ends pace: the client end's stdin ([`super::StdinPacer`])
//! and the command end's output ([`super::CommandSession`]), each on a
//! path whose round trip is at least [`MIN_TUNED_RTT`] (below it, a first
//! window already covers the bandwidth-delay product).
//!
//! No clock is read here: the driver passes the time in.

use std::time::{Duration, Instant};

use super::autotune::MIN_TUNED_RTT;

/// How much faster than a window per round trip a stream may go out. A
/// window at the path's product then queues at most a ninth of it.
pub const PACING_GAIN: f64 = 1.125;

/// How far ahead of its pace a stream may be: a burst this long at the
/// pace (a timer wakes a task a millisecond late, or more on a busy
/// machine).
const PACING_SLACK: Duration = Duration::from_millis(2);

/// One stream's pace.
#[derive(Clone, Debug, Default)]
pub struct Pace {
    /// When all sent so far has gone out at the pace.
    paced_until: Option<Instant>,
}

impl Pace {
    /// Bytes per second for `window` bytes per round trip `rtt`, if the
    /// path is long enough to pace.
    pub fn rate(window: u64, rtt: Option<Duration>) -> Option<f64> {
        let rtt = rtt.filter(|r| *r >= MIN_TUNED_RTT)?;
        Some(window as f64 * PACING_GAIN / rtt.as_secs_f64())
    }

    /// When the next frame may go out at `rate`, if not now.
    pub fn ready_at(&self, rate: Option<f64>, now: Instant) -> Option<Instant> {
        rate?;
        let at = self.paced_until?.checked_sub(PACING_SLACK)?;
        (at > now).then_some(at)
    }

    /// `cost` bytes went out now, at `rate` (`None`: not paced).
    pub fn sent(&mut self, cost: u64, rate: Option<f64>, now: Instant) {
        let Some(rate) = rate.filter(|r| *r > 0.0) else {
            return;
        };
        let from = self.paced_until.map_or(now, |p| p.max(now));
        self.paced_until = Some(from + Duration::from_secs_f64(cost as f64 / rate));
    }
}

/// An output stream's pace at the command end, which times its own round
/// trip: from sending a byte to its credit coming back, one byte at a
/// time, the least seen. (The client end's measure of it includes the
/// command's start; credit comes back as the client's consumer takes the
/// bytes, so a slow consumer only lengthens some timings.)
#[derive(Clone, Debug, Default)]
pub struct OutputPace {
    pace: Pace,
    rtt: Option<Duration>,
    /// Credit sent in all.
    sent: u64,
    /// The byte being timed: the credit total once it is back, and when it
    /// left.
    mark: Option<(u64, Instant)>,
}

impl OutputPace {
    /// The least round trip timed.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// `cost` more credit went out now, with `window` the stream's window.
    pub fn sent(&mut self, cost: u64, window: u64, now: Instant) {
        self.sent += cost;
        if self.mark.is_none() {
            self.mark = Some((self.sent, now));
        }
        self.pace.sent(cost, Pace::rate(window, self.rtt), now);
    }

    /// Credit came back: `in_flight` is what remains in flight now.
    pub fn credited(&mut self, in_flight: u64, now: Instant) {
        let acked = self.sent.saturating_sub(in_flight);
        if let Some((at, sent_at)) = self.mark
            && acked >= at
        {
            self.mark = None;
            let rtt = now.saturating_duration_since(sent_at);
            if !rtt.is_zero() {
                self.rtt = Some(self.rtt.map_or(rtt, |r| r.min(rtt)));
            }
        }
    }

    /// When the next frame may go out, with `window` the stream's window,
    /// if not now.
    pub fn ready_at(&self, window: u64, now: Instant) -> Option<Instant> {
        self.pace.ready_at(Pace::rate(window, self.rtt), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_window_goes_out_over_the_round_trip_not_at_once() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut pace = Pace::default();
        let rate = Pace::rate(8 * MIB, Some(rtt));
        // 8 MiB in 128 KiB frames, each sent as soon as the pace allows.
        let mut now = t0;
        for _ in 0..64 {
            if let Some(at) = pace.ready_at(rate, now) {
                now = at;
            }
            pace.sent(128 << 10, rate, now);
        }
        let took = now - t0;
        // At 9/8 of a window per round trip: 8/9 of it (89 ms), less the
        // last frame and the slack.
        assert!(
            took >= Duration::from_millis(80) && took <= Duration::from_millis(88),
            "{took:?}"
        );
    }

    #[test]
    fn on_loopback_nothing_is_paced() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        let rate = Pace::rate(8 * MIB, Some(Duration::from_millis(1)));
        assert_eq!(rate, None);
        for _ in 0..64 {
            pace.sent(128 << 10, rate, t0);
            assert_eq!(pace.ready_at(rate, t0), None);
        }
    }

    #[test]
    fn an_output_times_its_round_trip_from_its_own_credit_then_paces() {
        let t0 = Instant::now();
        let window = 2 * MIB;
        let mut out = OutputPace::default();
        // The first window goes out at once: no round trip known.
        for _ in 0..16 {
            out.sent(128 << 10, window, t0);
            assert_eq!(out.ready_at(window, t0), None);
        }
        // The first frame's credit comes back 150 ms later.
        let back = t0 + Duration::from_millis(150);
        out.credited(window - (128 << 10), back);
        assert_eq!(out.rtt(), Some(Duration::from_millis(150)));
        // A slower timing later does not raise it.
        out.sent(128 << 10, window, back);
        out.credited(0, back + Duration::from_millis(400));
        assert_eq!(out.rtt(), Some(Duration::from_millis(150)));
        // From now on a frame waits its turn.
        let now = back + Duration::from_millis(400);
        out.sent(1 << 20, window, now);
        assert!(out.ready_at(window, now).is_some());
    }
}
