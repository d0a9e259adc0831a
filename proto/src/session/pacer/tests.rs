//! The pacer against a simulated link: a bottleneck of a given rate with
//! an unbounded queue at the sender's side, then the whole round trip on
//! the way to a receiver that credits each frame back as it arrives.
//! Deterministic: time is a counter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;

const MIB: u64 = 1 << 20;
const FRAME: u64 = 128 << 10;
const TICK: Duration = Duration::from_micros(250);

struct Link {
    rtt: Duration,
    /// Bytes per second at the bottleneck.
    rate: f64,
}

/// What a run saw, per round trip of the link.
#[derive(Default, Debug)]
struct Trace {
    /// The window at the end of each round trip.
    window: Vec<u64>,
    /// The largest bottleneck queue during each round trip, in bytes.
    queue: Vec<u64>,
    /// Bytes through the bottleneck during each round trip.
    delivered: Vec<u64>,
}

/// Run `trips` round trips of `link`. The sender has `per_trip` bytes to
/// send each round trip (`None`: always data waiting); at the round trip
/// `change_at` the bottleneck's rate becomes `changed_rate` and the pacer is
/// told the path changed.
fn run(
    link: Link,
    trips: usize,
    per_trip: Option<u64>,
    measured: bool,
    change: Option<(usize, f64)>,
) -> Trace {
    let t0 = Instant::now();
    let mut pacer = StdinPacer::new();
    if measured {
        pacer.measured(link.rtt);
    }
    let mut rate = link.rate;
    let mut trace = Trace::default();
    let mut queue: VecDeque<u64> = VecDeque::new();
    let mut queued = 0u64;
    let mut budget = 0f64;
    let mut credits: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut in_flight = 0u64;
    let ticks_per_trip = (link.rtt.as_micros() / TICK.as_micros()) as usize;
    let mut have = 0u64;
    for trip in 0..trips {
        if let Some((at, new_rate)) = change
            && trip == at
        {
            rate = new_rate;
            pacer.path_changed();
        }
        have = match per_trip {
            Some(n) => have + n,
            None => u64::MAX,
        };
        let (mut max_queue, mut through) = (0u64, 0u64);
        for tick in 0..ticks_per_trip {
            let now = t0 + link.rtt * trip as u32 + TICK * tick as u32;
            while credits.front().is_some_and(|(at, _)| *at <= now) {
                let (_, cost) = credits.pop_front().unwrap();
                in_flight -= cost;
                pacer.credited(in_flight, now);
            }
            budget += rate * TICK.as_secs_f64();
            while let Some(&front) = queue.front() {
                if budget < front as f64 {
                    break;
                }
                budget -= front as f64;
                queue.pop_front();
                queued -= front;
                through += front;
                credits.push_back((now + link.rtt, front));
            }
            if queue.is_empty() {
                budget = budget.min(FRAME as f64);
            }
            loop {
                // Ahead of the pace: the driver waits.
                if pacer.ready_at(now).is_some() {
                    break;
                }
                let n = pacer.sendable(FRAME as usize, in_flight) as u64;
                let n = n.min(have);
                if n < 512 {
                    // Data waits and the window is what holds it back.
                    if have >= 512 {
                        pacer.held_back();
                    }
                    break;
                }
                have -= n;
                in_flight += n;
                queue.push_back(n);
                queued += n;
                pacer.sent(n, now);
            }
            max_queue = max_queue.max(queued);
        }
        trace.window.push(pacer.window());
        trace.queue.push(max_queue);
        trace.delivered.push(through);
    }
    trace
}

fn gbit(rtt_ms: u64) -> Link {
    Link {
        rtt: Duration::from_millis(rtt_ms),
        rate: 125_000_000.0,
    }
}

/// The round trip by which the window first reached `at_least`.
fn reached(trace: &Trace, at_least: u64) -> Option<usize> {
    trace.window.iter().position(|w| *w >= at_least)
}

#[test]
fn at_150_ms_the_window_reaches_the_max_in_a_few_round_trips_and_no_queue_builds() {
    // 1 Gbit/s at 150 ms is 18.75 MB in flight, more than the max.
    let trace = run(gbit(150), 20, None, true, None);
    let at = reached(&trace, MAX).expect("it reaches the max");
    assert!(at <= 5, "2 to 16 MiB is 3 doublings: round trip {at}");
    // Paced, slow start sends no bursts the bottleneck must queue (it sent
    // two bytes for each credited back at once: 8.5 MB queued, 68 ms), and
    // the link keeps up with 16 MiB per round trip after it.
    assert!(
        trace.queue.iter().all(|q| *q <= 2 * FRAME),
        "a queue built: {:?}",
        trace.queue
    );
}

#[test]
fn at_50_ms_it_fills_the_link_quickly_and_keeps_the_queue_short() {
    // 1 Gbit/s at 50 ms: 6.25 MB is the product.
    let bdp = 6_250_000u64;
    let trace = run(gbit(50), 40, None, true, None);
    let first_full = trace
        .delivered
        .iter()
        .position(|d| *d * 10 >= bdp * 9)
        .expect("the link fills");
    assert!(
        first_full <= 6,
        "full by round trip {first_full}: {trace:?}"
    );
    // Slow start overshoots for a round trip or two (the round trip it
    // takes to see the queue, while the window doubles), then drains. It
    // stops at the first two round trips in a row that show the queue:
    // with the least of a whole round, the queue reached 1.7 products.
    let peak = trace.queue.iter().max().copied().unwrap_or(0);
    assert!(peak * 10 <= bdp * 14, "the queue reached {peak}");
    // It drains to the product, not below it: the link is not left idle
    // while the window grows back by a 32nd per round trip.
    let top = trace
        .window
        .iter()
        .position(|w| *w == *trace.window.iter().max().unwrap());
    let after = &trace.window[top.unwrap() + 1..];
    assert!(
        after.iter().all(|w| *w * 100 >= bdp * 95),
        "drained below the product: {after:?}"
    );
    let late = &trace.queue[8..];
    assert!(
        late.iter().all(|q| *q <= bdp / 4),
        "no standing queue beyond a quarter of the product: {late:?}"
    );
    let moved: u64 = trace.delivered[20..].iter().sum();
    assert!(
        moved * 100 >= bdp * 20 * 95,
        "and it keeps the link 95 % busy: {moved}"
    );
    assert!(trace.window.iter().all(|w| *w <= MAX));
}

#[test]
fn without_a_start_measurement_its_own_round_trips_time_the_path() {
    let trace = run(gbit(150), 20, None, false, None);
    let at = reached(&trace, MAX).expect("it reaches the max");
    assert!(at <= 6, "one round trip later at most: {at}");
}

#[test]
fn on_loopback_or_a_lan_the_first_window_stays() {
    let trace = run(gbit(2), 200, None, true, None);
    assert!(trace.window.iter().all(|w| *w == INITIAL), "{trace:?}");
}

#[test]
fn a_sender_with_little_to_send_keeps_the_first_window() {
    let trace = run(gbit(150), 40, Some(MIB), true, None);
    assert!(trace.window.iter().all(|w| *w == INITIAL), "{trace:?}");
}

#[test]
fn a_slow_bottleneck_keeps_the_window_near_its_product() {
    // 100 Mbit/s at 150 ms: 1.875 MB, less than the first window: the
    // window stays near it.
    let link = Link {
        rtt: Duration::from_millis(150),
        rate: 12_500_000.0,
    };
    let trace = run(link, 40, None, true, None);
    assert!(
        trace.window.iter().all(|w| *w <= INITIAL * 5 / 4),
        "{trace:?}"
    );
}

#[test]
fn when_the_path_widens_slow_start_begins_again() {
    // One SSH channel's 2 MiB per round trip at 150 ms (14 MB/s), then
    // eight channels' worth: the window drains to the first, then grows.
    let link = Link {
        rtt: Duration::from_millis(150),
        rate: 14_000_000.0,
    };
    let trace = run(link, 24, None, true, Some((8, 125_000_000.0)));
    assert!(trace.window[7] <= INITIAL * 3 / 2, "{trace:?}");
    let at = reached(&trace, MAX).expect("it reaches the max");
    assert!(
        (8..=13).contains(&at),
        "within 5 round trips: {at}, {trace:?}"
    );
}

#[test]
fn a_window_grown_past_the_grant_wants_room_though_the_grant_held_it_back() {
    let t0 = Instant::now();
    let mut pacer = StdinPacer::new();
    pacer.measured(Duration::from_millis(150));
    let grant = u64::from(crate::session::SESSION_WINDOW);
    assert!(!pacer.wants_room(grant), "nothing held it back yet");
    // A window's worth goes out and the window holds the stream back.
    pacer.sent(INITIAL, t0);
    pacer.held_back();
    assert!(pacer.wants_room(grant));
    // The credit comes back a round trip later and slow start grows the
    // window by it; that round ends, and with it the flag.
    let later = t0 + Duration::from_millis(150);
    pacer.credited(0, later);
    assert!(
        pacer.window() > grant,
        "slow start grew it: {}",
        pacer.window()
    );
    // The next window is held back by the grant, not by the pacer's own
    // window: it must still ask for room, or it stays at the grant.
    pacer.sent(grant, later);
    pacer.credited(0, later + Duration::from_millis(150));
    assert!(pacer.wants_room(grant));
}

#[test]
fn one_late_timing_does_not_end_slow_start() {
    // Frames 5 ms apart at 150 ms; the credit of one marked frame is 10 ms
    // late (a scheduler's hiccup, not a queue; the threshold is 8 ms):
    // slow start goes on.
    let t0 = Instant::now();
    let rtt = Duration::from_millis(150);
    let mut pacer = StdinPacer::new();
    pacer.measured(rtt);
    pacer.held_back();
    let frames = 16u32;
    let step = Duration::from_millis(5);
    for k in 0..frames {
        pacer.sent(FRAME, t0 + step * k);
    }
    let mut last = t0;
    for k in 0..frames {
        let late = if k == 4 {
            Duration::from_millis(10)
        } else {
            Duration::ZERO
        };
        // Credit is cumulative: none comes back before the one before it.
        let at = (t0 + step * k + rtt + late).max(last);
        last = at;
        pacer.credited(FRAME * u64::from(frames - 1 - k), at);
    }
    assert!(pacer.in_slow_start(), "one late timing ended slow start");
    assert!(
        pacer.window() > INITIAL,
        "and the window grew: {}",
        pacer.window()
    );
}
