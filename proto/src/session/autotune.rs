//! Output windows that grow with the measured bandwidth-delay product, as
//! TCP's receive-buffer autotuning does (Linux's "dynamic right-sizing").
//!
//! A stream starts with [`SESSION_WINDOW`](super::SESSION_WINDOW); one window per round trip is
//! then its top speed (2 MiB at 150 ms is 13 MiB/s). The receiving end
//! measures two things and raises the window from them:
//!
//! - the round trip: from asking the command end to its first frame (an
//!   upper bound: the command's own start is in it);
//! - what arrived in each round trip since.
//!
//! When a round trip brought at least three quarters of the window, the
//! window was the limit: it becomes 9/8 of what arrived, so it grows by an
//! eighth per round trip while the window limits, and stops at about 9/8
//! of the path's bandwidth-delay product once the link does. What a window
//! holds beyond the product waits in the bottleneck's queue, in front of
//! every other session's bytes: an eighth of the product is an eighth of
//! a round trip (6 ms at 50 ms), which keeps a new session within a round
//! trip and 20 ms; 5/4 ramped up faster but cost 21 ms at 50 ms and
//! 1 Gbit/s (`fakessh-bench fat`).
//! It grows only while the local consumer keeps up (less than half the
//! window waits to be written: otherwise the writer, not the path, is the
//! limit), on round trips of at least [`MIN_TUNED_RTT`] (on loopback and
//! LANs the first window already covers the product), never beyond
//! [`MAX_SESSION_WINDOW`] (memory), and never shrinks.
//!
//! Stdin's window is the sending end's to find ([`super::pacer`]): it
//! sees both when a byte left and when its credit came back, so it can
//! ramp faster and see a queue build. It asks, and the command end, which
//! buffers stdin, grants (`SessionControl::GrowStdin`).
//!
//! No clock is read here: the driver passes the time in.

use std::time::{Duration, Instant};

use super::credit::MAX_SESSION_WINDOW;

/// Round trips shorter than this never grow a window: the initial one
/// already covers 2 MiB per 5 ms, 400 MiB/s.
pub const MIN_TUNED_RTT: Duration = Duration::from_millis(5);

/// One output stream's window tuner.
#[derive(Clone, Debug, Default)]
pub struct WindowTuner {
    asked_at: Option<Instant>,
    rtt: Option<Duration>,
    epoch_start: Option<Instant>,
    epoch_bytes: u64,
}

impl WindowTuner {
    pub fn new() -> WindowTuner {
        WindowTuner::default()
    }

    /// The request went to the command end now.
    pub fn asked(&mut self, now: Instant) {
        if self.asked_at.is_none() {
            self.asked_at = Some(now);
        }
    }

    /// The round trip measured, if any.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// A frame from the command end arrived now (any frame: the first one
    /// ends the round-trip measurement).
    pub fn heard(&mut self, now: Instant) {
        if self.rtt.is_none()
            && let Some(asked) = self.asked_at
        {
            self.rtt = Some(now.saturating_duration_since(asked));
        }
    }

    /// `len` bytes of output arrived now, with `window` and `waiting` (bytes
    /// received and not yet written) as they are after it: the window to
    /// grow to, if it should grow.
    pub fn on_output(
        &mut self,
        now: Instant,
        len: usize,
        window: u64,
        waiting: u64,
    ) -> Option<u64> {
        self.heard(now);
        let rtt = self.rtt.filter(|rtt| *rtt >= MIN_TUNED_RTT)?;
        if window >= u64::from(MAX_SESSION_WINDOW) {
            return None;
        }
        let start = *self.epoch_start.get_or_insert(now);
        self.epoch_bytes += len as u64;
        if now.saturating_duration_since(start) < rtt {
            return None;
        }
        let arrived = std::mem::take(&mut self.epoch_bytes);
        self.epoch_start = Some(now);
        let window_limited = arrived * 4 >= window * 3;
        let consumer_keeps_up = waiting * 2 < window;
        let target = (arrived + arrived / 8).min(u64::from(MAX_SESSION_WINDOW));
        (window_limited && consumer_keeps_up && target > window).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SESSION_WINDOW;

    const MIB: u64 = 1 << 20;
    const INITIAL_WINDOW: u64 = SESSION_WINDOW as u64;

    /// Feed a stream that moves `per_rtt(window)` bytes per round trip, in
    /// 128 KiB frames, for `trips` round trips; the window it ends with.
    fn run(rtt_ms: u64, trips: u32, per_rtt: impl Fn(u64) -> u64, waiting: u64) -> u64 {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(rtt_ms);
        let mut tuner = WindowTuner::new();
        tuner.asked(t0);
        let mut now = t0 + rtt;
        tuner.heard(now);
        let mut window = INITIAL_WINDOW;
        for _ in 0..trips {
            let bytes = per_rtt(window);
            let frames = bytes.div_ceil(128 << 10).max(1);
            for i in 0..frames {
                let at = now + rtt * (i as u32 + 1) / frames as u32;
                if let Some(to) = tuner.on_output(at, (bytes / frames) as usize, window, waiting) {
                    assert!(to > window, "it only grows");
                    window = to;
                }
            }
            now += rtt;
        }
        window
    }

    #[test]
    fn a_window_limited_stream_grows_to_the_max_and_no_further() {
        let window = run(150, 40, |w| w, 0);
        assert_eq!(window, u64::from(MAX_SESSION_WINDOW));
    }

    #[test]
    fn a_link_limited_stream_stops_near_its_bandwidth_delay_product() {
        // 1 Gbit/s at 50 ms: about 6 MB per round trip.
        let bdp = 125_000_000 / 20;
        let window = run(50, 60, |w| w.min(bdp), 0);
        assert!(window >= bdp, "it reaches the product: {window}");
        assert!(window <= bdp * 5 / 4, "and stops near it: {window}");
    }

    #[test]
    fn a_slow_consumer_or_a_short_round_trip_keeps_the_first_window() {
        assert_eq!(run(50, 40, |w| w, INITIAL_WINDOW), INITIAL_WINDOW);
        assert_eq!(run(1, 400, |w| w, 0), INITIAL_WINDOW);
        assert!(run(5, 400, |w| w, 0) > INITIAL_WINDOW);
    }

    #[test]
    fn a_stream_that_uses_little_of_its_window_keeps_it() {
        assert_eq!(run(150, 40, |_| MIB, 0), INITIAL_WINDOW);
    }

    #[test]
    fn without_a_measured_round_trip_nothing_grows() {
        let mut tuner = WindowTuner::new();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(tuner.on_output(at, 1 << 20, INITIAL_WINDOW, 0), None);
        }
    }

    /// Both ends: the client raises stdout's window, the control crosses as
    /// a frame, and the command end may then send the grown window.
    #[test]
    fn a_grown_window_reaches_the_command_end_and_is_bounded_there() {
        use crate::session::{
            ClientAction, ClientSession, CommandSession, OutputStream, SessionControl, Side,
            ToCommand,
        };
        let stdout = OutputStream::Stdout;
        let mut client = ClientSession::local(false);
        let mut command = CommandSession::new(false);
        let window = SESSION_WINDOW as usize;
        assert!(command.sent(stdout, window));
        assert_eq!(command.sendable(stdout, window), 0);
        assert!(client.grow_output(stdout, 3 * INITIAL_WINDOW));
        assert_eq!(client.output_window(stdout), (3 * INITIAL_WINDOW, 0));
        let Some(ClientAction::Send(control)) = client.next_action() else {
            panic!("the growth is announced");
        };
        let frame = ToCommand::Control(control).to_frame(1, 2);
        let msg = ToCommand::from_frame(&frame).unwrap();
        command.on_message(msg).unwrap();
        assert_eq!(command.sendable(stdout, 4 * window), 2 * window);
        // A client that claims more than the max is refused.
        let lie = SessionControl::GrowWindow {
            stream: stdout,
            bytes: MAX_SESSION_WINDOW,
        };
        assert!(command.on_message(ToCommand::Control(lie)).is_err());
        // A forwarded stream keeps the shim's window.
        let mut host = ClientSession::split(Side::Local, Side::Forwarded, Side::Local, false);
        assert!(!host.grow_output(stdout, 3 * INITIAL_WINDOW));
        assert_eq!(host.output_window(stdout), (INITIAL_WINDOW, 0));
        assert_eq!(host.next_action(), None);
    }
}
