//! Output windows that grow with the measured bandwidth-delay product, as
//! TCP's receive-buffer autotuning does (Linux's "dynamic right-sizing").
//!
//! A stream starts with [`SESSION_WINDOW`](super::SESSION_WINDOW); one window per round trip is
//! then its top speed (2 MiB at 150 ms is 13 MiB/s). The receiving end
//! measures two things and raises the window from them:
//!
//! - the round trip: from asking the command end to its first frame (an
//!   upper bound: the command's own start is in it), or stdin's timed
//!   round trip once it is shorter ([`WindowTuner::measured`]);
//! - what arrived in each round trip since (an epoch that ended late,
//!   after a pause, counts what arrived per round trip of it).
//!
//! It starts as TCP's slow start does: while what a round trip brought
//! fills the window the sender had, the window grows by that much, until
//! a round trip brings what the last one did, and at least a quarter of
//! the window (less is the command's own pace: rsync's file list): the
//! path is full, and the window drops to 9/8 of what arrived (credit is
//! kept back until the sender has only that much room). From then on,
//! when two round trips in a row brought at least three quarters of the
//! window (one that began with a burst of what waited while this end was
//! busy brings more than the path does), the window was the limit: it
//! becomes 9/8 of the lesser, so it grows by an eighth per
//! round trip while the window limits, and stops at about 9/8 of the
//! path's bandwidth-delay product once the link does. What a window
//! holds beyond the product waits in the bottleneck's queue, in front of
//! every other session's bytes: an eighth of the product is an eighth of
//! a round trip (6 ms at 50 ms), which keeps a new session within a round
//! trip and 20 ms; 5/4 ramped up faster but cost 21 ms at 50 ms and
//! 1 Gbit/s (`fakessh-bench fat`).
//! It grows only while the local consumer keeps up (less than half the
//! window waits to be written: otherwise the writer, not the path, is the
//! limit), on round trips of at least [`MIN_TUNED_RTT`] (on loopback and
//! LANs the first window already covers the product), never beyond
//! [`MAX_SESSION_WINDOW`] (memory), and shrinks only as slow start ends.
//!
//! Stdin's window is the sending end's to find ([`super::pacer`]): it
//! sees both when a byte left and when its credit came back, so it can
//! ramp faster and see a queue build. It asks, and the command end, which
//! buffers stdin, grants (`SessionControl::GrowStdin`).
//!
//! No clock is read here: the driver passes the time in.

use std::time::{Duration, Instant};

use super::credit::{MAX_SESSION_WINDOW, SESSION_WINDOW};

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
    /// Slow start is over: the path, not the window, limited once.
    filled: bool,
    /// What the last round trip brought, and the window at its end
    /// (before it grew: what the sender had during the one after).
    last_arrived: u64,
    last_window: Option<u64>,
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

    /// Another part of the session timed the round trip: `rtt`, if shorter
    /// (this one is an upper bound, with the command's start in it).
    pub fn measured(&mut self, rtt: Duration) {
        if self.rtt.is_some_and(|r| rtt < r) && !rtt.is_zero() {
            self.rtt = Some(rtt);
        }
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
    /// have, if it should change (lower only once, as slow start ends).
    pub fn on_output(
        &mut self,
        now: Instant,
        len: usize,
        window: u64,
        waiting: u64,
    ) -> Option<u64> {
        self.heard(now);
        let rtt = self.rtt.filter(|rtt| *rtt >= MIN_TUNED_RTT)?;
        if self.filled && window >= u64::from(MAX_SESSION_WINDOW) {
            return None;
        }
        let start = *self.epoch_start.get_or_insert(now);
        self.epoch_bytes += len as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed < rtt {
            return None;
        }
        // What arrived per round trip: an epoch ends at the first frame a
        // round trip after it began, later if frames came in a burst after
        // a pause (this end was busy), and counting all of a longer epoch
        // as one round trip's raised the window past the path's product
        // (to 1.7 times it at 50 ms, in `fakessh-bench fat`).
        let epoch = std::mem::take(&mut self.epoch_bytes);
        let arrived = (u128::from(epoch) * rtt.as_nanos() / elapsed.as_nanos().max(1)) as u64;
        self.epoch_start = Some(now);
        let consumer_keeps_up = waiting * 2 < window;
        if !self.filled {
            return self.slow_start(arrived, window, consumer_keeps_up);
        }
        // Two round trips in a row: one that began with a burst of what
        // waited while this end was busy brings more than the path does.
        let last = std::mem::replace(&mut self.last_arrived, arrived);
        let arrived = arrived.min(last);
        let window_limited = arrived * 4 >= window * 3;
        let target = (arrived + arrived / 8).min(u64::from(MAX_SESSION_WINDOW));
        (window_limited && consumer_keeps_up && target > window).then_some(target)
    }

    /// A round trip in slow start brought `arrived`. A grant takes a round
    /// trip to show in what arrives, so this round trip's bytes are
    /// measured against the window at the end of the last one. While they
    /// fill it, the window grows by what arrived (about 1.6 times per round
    /// trip, with that lag); once they fill no more of it, and brought
    /// what the last round trip did, within an eighth (more is the window
    /// still showing; less, a lull in the output, not the path), and at
    /// least a quarter of the window (less is the command's own pace), the
    /// path is full: the window drops to 9/8 of what arrived, and grows by an
    /// eighth from then on. A round trip the writer held back tells
    /// nothing, and is not compared with.
    fn slow_start(&mut self, arrived: u64, window: u64, consumer_keeps_up: bool) -> Option<u64> {
        let then = self.last_window.replace(window).unwrap_or(window);
        let last = std::mem::replace(&mut self.last_arrived, arrived);
        if !consumer_keeps_up {
            self.last_arrived = 0;
            return None;
        }
        if arrived * 4 >= then * 3 {
            let target = (window + arrived).min(u64::from(MAX_SESSION_WINDOW));
            return (target > window).then_some(target);
        }
        // A quarter of the window at least: a command that sent a little
        // for two round trips in a row (rsync's start) is not the path.
        let path = arrived * 4 >= then;
        if path && last > 0 && arrived * 8 >= last * 7 && arrived * 8 <= last * 9 {
            self.filled = true;
            let target = (arrived + arrived / 8).max(u64::from(SESSION_WINDOW));
            return (target < window).then_some(target);
        }
        None
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
                    window = to;
                }
            }
            now += rtt;
        }
        window
    }

    /// A stream through a path of `rtt_ms` whose bottleneck moves
    /// `rate` bytes per second (a queue in front of it), with grants and
    /// data each taking half the round trip plus the queue, and a writer
    /// that keeps up: the receiver's window at the end of each round trip,
    /// for `trips` of them. The sender's window, all it was granted, never
    /// passes the max.
    fn through_a_bottleneck(rtt_ms: u64, rate: u64, trips: u32) -> Vec<u64> {
        use crate::session::RecvCredit;
        use std::collections::VecDeque;
        let rtt = Duration::from_millis(rtt_ms);
        let step = rtt / 32;
        let per_step = rate * step.as_micros() as u64 / 1_000_000;
        let t0 = Instant::now();
        let mut tuner = WindowTuner::new();
        tuner.asked(t0);
        tuner.heard(t0 + rtt);
        let mut recv = RecvCredit::new(SESSION_WINDOW);
        // The sender's room, the bottleneck's queue, and what is on the way
        // each direction (when it arrives, how much).
        let mut room = INITIAL_WINDOW;
        let mut granted = INITIAL_WINDOW;
        let mut queue = 0u64;
        // When each amount arrives at the far end.
        type OnTheWay = VecDeque<(Instant, u64)>;
        let (mut data, mut credit) = (OnTheWay::new(), OnTheWay::new());
        let mut windows = Vec::new();
        for n in 1..=trips * 32 {
            let now = t0 + rtt + step * n;
            while credit.front().is_some_and(|(at, _)| *at <= now) {
                room += credit.pop_front().unwrap().1;
            }
            queue += std::mem::take(&mut room);
            let sent = queue.min(per_step);
            queue -= sent;
            data.push_back((now + rtt / 2, sent));
            while data.front().is_some_and(|(at, _)| *at <= now) {
                let (_, len) = data.pop_front().unwrap();
                if len == 0 {
                    continue;
                }
                let cost = recv.receive(len as usize).expect("within the window");
                let window = recv.window();
                let mut back = u64::from(recv.release(cost));
                match tuner.on_output(now, len as usize, window, 0) {
                    Some(to) if to > window => {
                        let raise = recv.grow_to(to);
                        back += u64::from(raise.credit) + u64::from(raise.grow);
                        granted += u64::from(raise.grow);
                        assert!(granted <= u64::from(MAX_SESSION_WINDOW), "{granted}");
                    }
                    Some(to) => recv.shrink_to(to),
                    None => {}
                }
                credit.push_back((now + rtt / 2, back));
            }
            if n % 32 == 0 {
                windows.push(recv.window());
            }
        }
        windows
    }

    #[test]
    fn slow_start_fills_a_long_fat_path_within_a_few_round_trips() {
        // 1 Gbit/s at 150 ms: 18.75 MB per round trip, more than the max.
        let windows = through_a_bottleneck(150, 125_000_000, 40);
        let full = windows
            .iter()
            .position(|w| *w >= u64::from(MAX_SESSION_WINDOW))
            .expect("it reaches the max");
        assert!(full <= 6, "the max after {full} round trips: {windows:?}");
    }

    #[test]
    fn a_command_that_starts_slowly_is_not_taken_for_a_full_path() {
        // rsync's first round trips bring a few KiB each (the file list),
        // the same each time; then the file at 1 Gbit/s over 150 ms.
        let trip = std::cell::Cell::new(0);
        let window = run(
            150,
            9,
            |window| {
                trip.set(trip.get() + 1);
                match trip.get() {
                    1..=4 => 24 << 10,
                    _ => window.min(18_750_000),
                }
            },
            0,
        );
        // Taken for a full path, it grew by an eighth per round trip from
        // 2 MiB: 3.6 MiB by now (a 256 MiB pull at 150 ms ran at 39 MiB/s,
        // against 62 when it was not).
        assert_eq!(window, u64::from(MAX_SESSION_WINDOW));
    }

    #[test]
    fn slow_start_ends_near_the_bandwidth_delay_product_and_stays_there() {
        // 1 Gbit/s at 50 ms: 6.25 MB per round trip.
        let bdp = 125_000_000 / 20;
        let windows = through_a_bottleneck(50, 125_000_000, 60);
        let reached = windows.iter().position(|w| *w >= bdp).expect("it fills");
        assert!(reached <= 5, "the product after {reached}: {windows:?}");
        // It overshoots while a grant takes a round trip to show (a queue
        // of up to about 1.7 products for two round trips), and never
        // drops below the product after.
        let peak = *windows.iter().max().unwrap();
        assert!(peak <= bdp * 3, "{windows:?}");
        assert!(windows[reached..].iter().all(|w| *w >= bdp), "{windows:?}");
        let last = *windows.last().unwrap();
        assert!(
            last >= bdp && last <= bdp * 5 / 4,
            "it settles near the product: {windows:?}"
        );
    }

    #[test]
    fn frames_that_come_in_bursts_after_pauses_do_not_raise_the_window_past_the_product() {
        // 1 Gbit/s at 50 ms, 128 KiB frames; every third round trip this end
        // is busy for 30 ms and then takes what waited all at once: the round
        // trip that begins with that burst brings 1.6 products. Growth
        // judged on it alone took the window to 1.77 products.
        let rtt = Duration::from_millis(50);
        let bdp = 125_000_000u64 / 20;
        let frame = 128u64 << 10;
        let gap = Duration::from_secs_f64(frame as f64 / 125e6);
        let t0 = Instant::now();
        let mut tuner = WindowTuner::new();
        tuner.asked(t0);
        tuner.heard(t0 + rtt);
        let mut window = bdp;
        let mut at = t0 + rtt;
        for trip in 0..200u32 {
            let frames = bdp / frame;
            let stall_until = (trip % 3 == 2).then(|| at + Duration::from_millis(30));
            for _ in 0..frames {
                at += gap;
                let seen = stall_until.map_or(at, |s| s.max(at));
                if let Some(to) = tuner.on_output(seen, frame as usize, window, 0) {
                    window = to;
                }
            }
        }
        assert!(
            window <= bdp * 5 / 4,
            "the window grew to {:.2} products",
            window as f64 / bdp as f64
        );
    }

    #[test]
    fn an_epoch_longer_than_the_round_trip_counts_what_arrived_per_round_trip() {
        // 2 MiB at once, then nothing for two round trips, then 2 MiB: 4 MiB
        // over two round trips is 2 MiB per round trip, and slow start grows
        // the window by that, not by 4.
        let t0 = Instant::now();
        let rtt = Duration::from_millis(50);
        let mut tuner = WindowTuner::new();
        tuner.asked(t0);
        tuner.heard(t0 + rtt);
        let start = t0 + rtt;
        assert_eq!(tuner.on_output(start, 2 << 20, INITIAL_WINDOW, 0), None);
        let grown = tuner.on_output(start + rtt * 2, 2 << 20, INITIAL_WINDOW, 0);
        assert_eq!(grown, Some(2 * INITIAL_WINDOW));
    }

    #[test]
    fn a_shorter_round_trip_timed_elsewhere_replaces_the_upper_bound() {
        let t0 = Instant::now();
        let mut tuner = WindowTuner::new();
        tuner.measured(Duration::from_millis(40));
        assert_eq!(tuner.rtt(), None, "nothing to lower yet");
        tuner.asked(t0);
        tuner.heard(t0 + Duration::from_millis(55));
        tuner.measured(Duration::from_millis(60));
        assert_eq!(tuner.rtt(), Some(Duration::from_millis(55)));
        tuner.measured(Duration::from_millis(50));
        assert_eq!(tuner.rtt(), Some(Duration::from_millis(50)));
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

    /// Both ends: a lowered window holds the command end to it, and once
    /// raised again, what was kept back comes back first and the stream
    /// goes on; no credit is lost either way.
    #[test]
    fn a_lowered_window_holds_the_command_end_back_until_it_is_raised() {
        use crate::session::{
            ClientAction, ClientSession, CommandSession, OutputStream, ToClient, ToCommand,
        };
        let stdout = OutputStream::Stdout;
        let mut client = ClientSession::local(false);
        let mut command = CommandSession::new(false);
        // Send `total` in 64 KiB frames, each written at once and its
        // credit carried back; the most the command end could send at once.
        let pump = |client: &mut ClientSession, command: &mut CommandSession, total: usize| {
            let mut most = 0;
            let mut left = total;
            while left > 0 {
                let n = command.sendable(stdout, left.min(64 << 10));
                most = most.max(command.sendable(stdout, usize::MAX));
                assert!(n > 0, "the command end is stuck with {left} left");
                assert!(command.sent(stdout, n, Instant::now()));
                left -= n;
                let data = bytes::Bytes::from(vec![0u8; n]);
                client.on_message(ToClient::Output(stdout, data)).unwrap();
                while let Some(action) = client.next_action() {
                    match action {
                        ClientAction::Write { stream, cost, .. } => {
                            client.written(stream, cost, true)
                        }
                        ClientAction::Send(control) => {
                            command.on_message(ToCommand::Control(control)).unwrap()
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            most
        };
        let window = SESSION_WINDOW as usize;
        assert!(client.shrink_output(stdout, INITIAL_WINDOW / 2));
        pump(&mut client, &mut command, 2 * window);
        // Lowered: the command end has half the window now.
        let most = pump(&mut client, &mut command, 4 * window);
        assert_eq!(most, window / 2);
        assert_eq!(client.output_window(stdout), (INITIAL_WINDOW / 2, 0));
        // Raised past where it was: the kept credit, then growth.
        assert_eq!(
            client.grow_output(stdout, 2 * INITIAL_WINDOW),
            Some(SESSION_WINDOW)
        );
        while let Some(ClientAction::Send(control)) = client.next_action() {
            command.on_message(ToCommand::Control(control)).unwrap();
        }
        assert_eq!(pump(&mut client, &mut command, 4 * window), 2 * window);
        assert_eq!(command.credit_held(), (0, client.credit_kept()));
        assert_eq!(client.credit_kept(), [0, 0]);
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
        assert!(command.sent(stdout, window, Instant::now()));
        assert_eq!(command.sendable(stdout, window), 0);
        assert!(client.grow_output(stdout, 3 * INITIAL_WINDOW).is_some());
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
        assert!(host.grow_output(stdout, 3 * INITIAL_WINDOW).is_none());
        assert_eq!(host.output_window(stdout), (INITIAL_WINDOW, 0));
        assert_eq!(host.next_action(), None);
    }
}
