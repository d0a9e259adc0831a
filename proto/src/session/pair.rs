//! A deterministic pair: a [`ClientSession`] and a [`CommandSession`]
//! connected to each other, with every step the two drivers could take
//! next (deliver a message either way, read stdin, read an output, finish
//! a write, let the command exit) chosen by a seeded generator. The
//! messages of each direction keep their order, as one session's frames do
//! on the router; everything else interleaves every way the seed says.
//!
//! Property tests run thousands of such sessions in milliseconds and check
//! the rules both machines share: every byte arrives once and in order, the
//! exit comes after all output, no direction ever has more in flight than
//! its window (also while the windows grow, or are lowered, at moments the
//! seed picks), credit comes home to zero (but for what the client kept
//! back to lower a window), and nothing deadlocks (also when
//! the client's reader goes away mid-stream).

use std::collections::VecDeque;

use bytes::Bytes;
use proptest::prelude::*;

use super::credit::{MAX_SESSION_WINDOW, SESSION_QUEUE, SESSION_WINDOW, frame_cost};
use super::{
    ClientAction, ClientSession, CommandAction, CommandSession, Ending, ExitStatus, Machine,
    OutputStream, SessionControl, ToClient, ToCommand,
};

/// A small deterministic generator (xorshift64*): the schedule.
struct Schedule(u64);

impl Schedule {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// What the session moves: stdin one way, stdout and stderr the other.
#[derive(Clone, Debug)]
struct Script {
    stdin: Vec<u8>,
    outputs: [Vec<u8>; 2],
    /// Largest chunk a driver reads at once.
    chunk: usize,
    /// The client's stdout reader goes away after this many writes.
    reader_gone_after: Option<usize>,
    /// How many times the client widens windows (asks for stdin's, grows
    /// an output's) at a moment the schedule picks.
    grows: usize,
    seed: u64,
}

/// One step either driver could take now.
#[derive(Clone, Copy, Debug)]
enum Step {
    ToCommand,
    ToClient,
    ReadStdin,
    ReadOutput(OutputStream),
    FinishClientWrite,
    FinishStdinWrite,
    Exit,
    Grow,
}

#[derive(Default)]
struct Seen {
    stdin: Vec<u8>,
    outputs: [Vec<u8>; 2],
    ending: Option<Ending>,
    /// Output written when the ending was handed out.
    outputs_at_ending: [usize; 2],
    stdin_closed: bool,
    client_writes: usize,
    output_closed_by_reader: [bool; 2],
}

struct Pair {
    client: ClientSession,
    command: CommandSession,
    to_command: VecDeque<ToCommand>,
    to_client: VecDeque<ToClient>,
    /// The client's write in progress, and the command's queued stdin.
    client_write: Option<(OutputStream, Bytes, u32)>,
    stdin_writes: VecDeque<(Bytes, u32)>,
    stdin_left: Bytes,
    outputs_left: [Bytes; 2],
    outputs_read: [bool; 2],
    exited: bool,
    grows_left: usize,
    /// Data frame cost queued each way: stdin, stdout, stderr.
    queued_cost: [u64; 3],
    seen: Seen,
    script: Script,
}

impl Pair {
    fn new(script: Script) -> Pair {
        Pair {
            client: ClientSession::local(false),
            command: CommandSession::new(false),
            to_command: VecDeque::new(),
            to_client: VecDeque::new(),
            client_write: None,
            stdin_writes: VecDeque::new(),
            stdin_left: Bytes::from(script.stdin.clone()),
            outputs_left: script.outputs.clone().map(Bytes::from),
            outputs_read: [true, true],
            exited: false,
            grows_left: script.grows,
            queued_cost: [0; 3],
            seen: Seen::default(),
            script,
        }
    }

    fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if !self.to_command.is_empty() {
            steps.push(Step::ToCommand);
        }
        if !self.to_client.is_empty() {
            steps.push(Step::ToClient);
        }
        if !self.client.stdin_over()
            && (self.stdin_left.is_empty() || self.client.stdin_sendable(1) > 0)
        {
            steps.push(Step::ReadStdin);
        }
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let i = stream.index();
            if self.outputs_read[i]
                && self.command.output_open(stream)
                && (self.outputs_left[i].is_empty() || self.command.sendable(stream, 1) > 0)
            {
                steps.push(Step::ReadOutput(stream));
            }
        }
        if self.client_write.is_some() {
            steps.push(Step::FinishClientWrite);
        }
        if !self.stdin_writes.is_empty() {
            steps.push(Step::FinishStdinWrite);
        }
        // The command exits once it has read all its stdin, with its
        // output possibly still in the pipes.
        if !self.exited && self.seen.stdin_closed && self.stdin_writes.is_empty() {
            steps.push(Step::Exit);
        }
        if self.grows_left > 0 {
            steps.push(Step::Grow);
        }
        steps
    }

    fn run(mut self) -> Seen {
        let mut schedule = Schedule(self.script.seed | 1);
        loop {
            let steps = self.steps();
            if steps.is_empty() {
                break;
            }
            let step = steps[schedule.below(steps.len())];
            let size = 1 + schedule.below(self.script.chunk);
            self.take(step, size);
            self.act();
            self.check_bounds();
        }
        assert!(self.client.is_done(), "the client end never finished");
        assert!(self.command.is_done(), "the command end never finished");
        assert_eq!(
            self.client.credit_held(),
            (0, [0, 0]),
            "client credit came home"
        );
        assert_eq!(
            self.command.credit_held(),
            (0, self.client.credit_kept()),
            "command credit came home, but for what the client kept back"
        );
        self.seen
    }

    fn take(&mut self, step: Step, size: usize) {
        match step {
            Step::ToCommand => {
                let msg = self.to_command.pop_front().unwrap();
                if let ToCommand::Stdin(data) = &msg {
                    self.queued_cost[0] -= u64::from(frame_cost(data.len()));
                }
                self.command
                    .on_message(msg)
                    .expect("the client keeps the rules");
            }
            Step::ToClient => {
                let msg = self.to_client.pop_front().unwrap();
                if let ToClient::Output(stream, data) = &msg {
                    self.queued_cost[1 + stream.index()] -= u64::from(frame_cost(data.len()));
                }
                Machine::on_message(&mut self.client, msg).expect("the command keeps the rules");
            }
            Step::ReadStdin if self.stdin_left.is_empty() => {
                if let Some(eof) = self.client.stdin_eof() {
                    self.to_command.push_back(ToCommand::Control(eof));
                }
            }
            Step::ReadStdin => {
                let n = self.client.stdin_sendable(size).min(self.stdin_left.len());
                assert!(self.client.stdin_sent(n));
                let data = self.stdin_left.split_to(n);
                self.queued_cost[0] += u64::from(frame_cost(n));
                self.to_command.push_back(ToCommand::Stdin(data));
            }
            Step::ReadOutput(stream) => {
                let i = stream.index();
                if self.outputs_left[i].is_empty() {
                    self.outputs_read[i] = false;
                    self.command.output_ended(stream);
                } else {
                    let n = self
                        .command
                        .sendable(stream, size)
                        .min(self.outputs_left[i].len());
                    assert!(self.command.sent(stream, n, std::time::Instant::now()));
                    let data = self.outputs_left[i].split_to(n);
                    self.queued_cost[1 + i] += u64::from(frame_cost(n));
                    self.to_client.push_back(ToClient::Output(stream, data));
                }
            }
            Step::FinishClientWrite => {
                let (stream, data, cost) = self.client_write.take().unwrap();
                let gone = stream == OutputStream::Stdout
                    && self
                        .script
                        .reader_gone_after
                        .is_some_and(|n| self.seen.client_writes >= n);
                if !gone {
                    self.seen.outputs[stream.index()].extend_from_slice(&data);
                }
                self.seen.client_writes += 1;
                self.client.written(stream, cost, !gone);
            }
            Step::FinishStdinWrite => {
                let (data, cost) = self.stdin_writes.pop_front().unwrap();
                self.seen.stdin.extend_from_slice(&data);
                self.command.stdin_written(cost);
            }
            Step::Exit => {
                self.exited = true;
                self.command.exited(ExitStatus::Code(7));
            }
            Step::Grow => {
                self.grows_left -= 1;
                let by = 64 * size as u64;
                let to = self.client.stdin_window().0 + by;
                if let Some(ask) = self.client.ask_stdin_window(to) {
                    self.to_command.push_back(ToCommand::Control(ask));
                }
                // An output's window grows, or grows to the max, or is
                // lowered (as slow start ends): credit kept back while it
                // was lowered must never let the command end's window pass
                // the max.
                let stream = [OutputStream::Stdout, OutputStream::Stderr][size % 2];
                let window = self.client.output_window(stream).0;
                match size % 3 {
                    0 => {
                        self.client.shrink_output(stream, window.saturating_sub(by));
                    }
                    1 => {
                        self.client
                            .grow_output(stream, u64::from(super::MAX_SESSION_WINDOW));
                    }
                    _ => {
                        self.client.grow_output(stream, window + by);
                    }
                }
            }
        }
    }

    /// Carry out what both machines ask, as their drivers would.
    fn act(&mut self) {
        while let Some(action) = self.client.next_action() {
            match action {
                ClientAction::Write { stream, data, cost } => {
                    assert!(self.client_write.is_none(), "one write at a time");
                    self.client_write = Some((stream, data, cost));
                }
                ClientAction::CloseOutput(_) | ClientAction::Forward(_) => {}
                ClientAction::Send(control) => {
                    if let SessionControl::OutputClosed(stream) = control {
                        self.seen.output_closed_by_reader[stream.index()] = true;
                    }
                    self.to_command.push_back(ToCommand::Control(control));
                }
                ClientAction::Finish(ending) => {
                    self.seen.outputs_at_ending = self.seen.outputs.clone().map(|o| o.len());
                    self.seen.ending = Some(ending);
                }
            }
        }
        while let Some(action) = self.command.next_action() {
            match action {
                CommandAction::WriteStdin { data, cost } => {
                    assert!(!self.seen.stdin_closed, "stdin after its end of file");
                    self.stdin_writes.push_back((data, cost));
                }
                CommandAction::CloseStdin => self.seen.stdin_closed = true,
                CommandAction::CloseOutput(stream) => {
                    // The command gets EPIPE: nothing more is read.
                    self.outputs_read[stream.index()] = false;
                }
                CommandAction::Send(event) => self.to_client.push_back(ToClient::Event(event)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// No direction has more data in flight than its window, and no more
    /// messages queued than a session may have.
    fn check_bounds(&self) {
        let windows = [
            self.client.stdin_window().0,
            self.client.output_window(OutputStream::Stdout).0,
            self.client.output_window(OutputStream::Stderr).0,
        ];
        for ((cost, window), what) in self
            .queued_cost
            .iter()
            .zip(windows)
            .zip(["stdin", "stdout", "stderr"])
        {
            assert!(*cost <= window, "{what} in flight: {cost} of {window}");
            assert!(window <= u64::from(MAX_SESSION_WINDOW));
        }
        assert!(self.to_client.len() <= SESSION_QUEUE);
        assert!(self.to_command.len() <= SESSION_QUEUE);
    }
}

fn script() -> impl Strategy<Value = Script> {
    let bytes = |max| prop::collection::vec(any::<u8>(), 0..max);
    (
        bytes(4000),
        bytes(4000),
        bytes(2000),
        prop::sample::select(vec![1usize, 7, 512, 4096, 1 << 20]),
        prop::option::of(0usize..8),
        0usize..4,
        any::<u64>(),
    )
        .prop_map(|(stdin, stdout, stderr, chunk, gone, grows, seed)| Script {
            stdin,
            outputs: [stdout, stderr],
            chunk,
            reader_gone_after: gone,
            grows,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_interleaving_delivers_every_byte_in_order_then_the_exit(script in script()) {
        let reader_stays = script.reader_gone_after.is_none();
        let seen = Pair::new(script.clone()).run();
        prop_assert_eq!(&seen.stdin, &script.stdin);
        prop_assert_eq!(&seen.outputs[1], &script.outputs[1]);
        if reader_stays {
            prop_assert_eq!(&seen.outputs[0], &script.outputs[0]);
            prop_assert!(!seen.output_closed_by_reader[0]);
        } else {
            // What was written is a prefix, never a corruption.
            prop_assert!(script.outputs[0].starts_with(&seen.outputs[0]));
        }
        prop_assert_eq!(seen.ending, Some(Ending::Exit(ExitStatus::Code(7))));
        // The exit is handed out only after every byte was written.
        prop_assert_eq!(seen.outputs_at_ending[1], script.outputs[1].len());
        prop_assert_eq!(seen.outputs_at_ending[0], seen.outputs[0].len());
    }
}

/// A whole window each way, in the largest chunks: the bounds are met
/// exactly, not only approached.
#[test]
fn a_full_window_each_way_fits_exactly() {
    let big = vec![0x5a; 3 * SESSION_WINDOW as usize];
    for seed in 0..8 {
        let script = Script {
            stdin: big.clone(),
            outputs: [big.clone(), big[..SESSION_WINDOW as usize].to_vec()],
            chunk: 1 << 20,
            reader_gone_after: None,
            grows: 0,
            seed,
        };
        let seen = Pair::new(script).run();
        assert_eq!(seen.stdin.len(), big.len());
        assert_eq!(seen.outputs[0].len(), big.len());
    }
}
