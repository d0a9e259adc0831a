use super::*;
use crate::session::credit::MIN_FRAME_COST;

fn credit(stream: OutputStream, bytes: u32) -> ToCommand {
    ToCommand::Control(SessionControl::Credit { stream, bytes })
}

/// Every action handed out now, in order.
fn drain(s: &mut CommandSession) -> Vec<CommandAction> {
    std::iter::from_fn(|| s.next_action()).collect()
}

#[test]
fn exit_waits_for_both_outputs_whatever_the_order() {
    use OutputStream::*;
    let exit = CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(3)));
    let eof = |s| CommandAction::Send(SessionEvent::Eof(s));
    // Exit first, then the outputs end.
    let mut s = CommandSession::new(false);
    s.exited(ExitStatus::Code(3));
    assert_eq!(drain(&mut s), vec![]);
    s.output_ended(Stderr);
    assert_eq!(drain(&mut s), vec![eof(Stderr)]);
    s.output_ended(Stdout);
    assert!(!s.is_done(), "not done while the exit is still to be sent");
    assert_eq!(drain(&mut s), vec![eof(Stdout), exit.clone()]);
    assert!(s.is_done());
    // Outputs first.
    let mut s = CommandSession::new(false);
    s.output_ended(Stdout);
    s.output_ended(Stderr);
    drain(&mut s);
    s.exited(ExitStatus::Code(3));
    assert_eq!(drain(&mut s), vec![exit.clone()]);
    // A reader that went away counts as ended, without an EOF event.
    let mut s = CommandSession::new(false);
    s.exited(ExitStatus::Code(3));
    s.output_ended(Stderr);
    drain(&mut s);
    s.on_message(ToCommand::Control(SessionControl::OutputClosed(Stdout)))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![CommandAction::CloseOutput(Stdout), exit]
    );
    s.output_ended(Stdout);
    assert!(drain(&mut s).is_empty(), "nothing after the exit");
}

#[test]
fn output_waits_for_credit_and_resumes_when_granted() {
    let mut s = CommandSession::new(false);
    let stdout = OutputStream::Stdout;
    let window = SESSION_WINDOW as usize;
    assert_eq!(s.sendable(stdout, 2 * window), window);
    assert!(s.sent(stdout, window, std::time::Instant::now()));
    assert_eq!(s.sendable(stdout, 4096), 0, "credit exhausted");
    assert!(!s.sent(stdout, 1, std::time::Instant::now()));
    s.on_message(credit(stdout, 4096)).unwrap();
    assert_eq!(s.sendable(stdout, 65536), 4096);
    assert_eq!(
        s.sendable(OutputStream::Stderr, 100),
        100,
        "streams are separate"
    );
}

#[test]
fn a_client_that_lies_about_credit_is_refused() {
    let mut s = CommandSession::new(false);
    assert!(s.sent(OutputStream::Stdout, 1000, std::time::Instant::now()));
    let lie = s
        .on_message(credit(OutputStream::Stdout, 5000))
        .unwrap_err();
    assert!(matches!(lie, ProtocolError::CreditBeyondSent { .. }));
    let never_sent = s.on_message(credit(OutputStream::Stderr, 1)).unwrap_err();
    assert!(matches!(never_sent, ProtocolError::CreditBeyondSent { .. }));
}

#[test]
fn stdin_is_credited_as_written_and_bounded_by_the_window() {
    let mut s = CommandSession::new(false);
    let chunk = Bytes::from(vec![0u8; 300]);
    s.on_message(ToCommand::Stdin(chunk.clone())).unwrap();
    let actions = drain(&mut s);
    let [CommandAction::WriteStdin { cost, .. }] = actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(cost, MIN_FRAME_COST, "a short frame costs the minimum");
    s.stdin_written(cost);
    assert_eq!(
        drain(&mut s),
        vec![CommandAction::Send(SessionEvent::StdinCredit(
            MIN_FRAME_COST
        ))]
    );
    let big = Bytes::from(vec![0u8; SESSION_WINDOW as usize]);
    s.on_message(ToCommand::Stdin(big.clone())).unwrap();
    let overrun = s.on_message(ToCommand::Stdin(chunk)).unwrap_err();
    assert!(
        matches!(overrun, ProtocolError::Overrun { .. }),
        "{overrun}"
    );
}

#[test]
fn stdin_eof_closes_stdin_once_and_data_after_it_is_refused() {
    let mut s = CommandSession::new(false);
    let eof = ToCommand::Control(SessionControl::Eof);
    s.on_message(eof.clone()).unwrap();
    assert_eq!(drain(&mut s), vec![CommandAction::CloseStdin]);
    s.on_message(eof).unwrap();
    assert_eq!(drain(&mut s), vec![]);
    let late = s.on_message(ToCommand::Stdin(Bytes::from_static(b"x")));
    assert!(matches!(late, Err(ProtocolError::StdinAfterEof)));
    assert!(
        s.output_open(OutputStream::Stdout),
        "EOF on stdin leaves the outputs open"
    );
}

#[test]
fn signals_pass_window_changes_only_reach_a_pty() {
    let size = PtyRequest {
        cols: 100,
        rows: 30,
    };
    let change = ToCommand::Control(SessionControl::WindowChange(size));
    let mut pipes = CommandSession::new(false);
    pipes.on_message(change.clone()).unwrap();
    assert_eq!(drain(&mut pipes), vec![]);
    pipes
        .on_message(ToCommand::Control(SessionControl::Signal(2)))
        .unwrap();
    assert_eq!(drain(&mut pipes), vec![CommandAction::Signal(2)]);
    let mut pty = CommandSession::new(true);
    pty.on_message(change).unwrap();
    assert_eq!(drain(&mut pty), vec![CommandAction::Resize(size)]);
}

#[test]
fn close_kills_and_ends_everything() {
    let mut s = CommandSession::new(false);
    let close = ToCommand::Control(SessionControl::Close);
    s.on_message(close).unwrap();
    assert_eq!(drain(&mut s), vec![CommandAction::Kill]);
    assert!(s.is_done());
    s.exited(ExitStatus::Code(0));
    s.fail("late".into());
    assert!(drain(&mut s).is_empty(), "no exit, no error after a close");
}

#[test]
fn a_stream_session_exits_after_its_one_output() {
    let mut s = CommandSession::stream();
    assert_eq!(s.sendable(OutputStream::Stderr, 10), 0);
    s.output_ended(OutputStream::Stdout);
    drain(&mut s);
    s.exited(ExitStatus::Code(0));
    assert_eq!(
        drain(&mut s),
        vec![CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(0)))]
    );
}

#[test]
fn a_pty_whose_output_never_ends_is_abandoned_after_the_exit() {
    let mut s = CommandSession::new(true);
    s.output_ended(OutputStream::Stderr);
    assert!(drain(&mut s).is_empty(), "a pty has no stderr");
    s.exited(ExitStatus::Code(0));
    assert!(drain(&mut s).is_empty());
    s.abandon_outputs();
    assert_eq!(
        drain(&mut s),
        vec![
            CommandAction::Send(SessionEvent::Eof(OutputStream::Stdout)),
            CommandAction::Send(SessionEvent::Exit(ExitStatus::Code(0))),
        ]
    );
}

#[test]
fn stdin_grows_as_asked_up_to_the_most_a_stream_may_hold_and_never_shrinks() {
    use crate::session::credit::MAX_SESSION_WINDOW;
    let grow = |window| ToCommand::Control(SessionControl::GrowStdin { window });
    let mut s = CommandSession::new(false);
    s.on_message(grow(3 << 20)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![CommandAction::Send(SessionEvent::StdinWindow(1 << 20))]
    );
    // Asked again, or for less: nothing more.
    s.on_message(grow(3 << 20)).unwrap();
    s.on_message(grow(1 << 20)).unwrap();
    assert_eq!(drain(&mut s), vec![]);
    // Beyond the most: up to it.
    s.on_message(grow(u32::MAX)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![CommandAction::Send(SessionEvent::StdinWindow(
            MAX_SESSION_WINDOW - (3 << 20)
        ))]
    );
    // The grown window is what stdin may now hold, and no more.
    let chunk = Bytes::from(vec![0; 1 << 20]);
    for _ in 0..16 {
        s.on_message(ToCommand::Stdin(chunk.clone())).unwrap();
    }
    assert!(matches!(
        s.on_message(ToCommand::Stdin(Bytes::from_static(b"x"))),
        Err(ProtocolError::Overrun { .. })
    ));
    // After stdin's end, no growth.
    let mut s = CommandSession::new(false);
    s.on_message(ToCommand::Control(SessionControl::Eof))
        .unwrap();
    drain(&mut s);
    s.on_message(grow(4 << 20)).unwrap();
    assert_eq!(drain(&mut s), vec![]);
}

#[test]
fn the_sessions_of_an_agent_grow_their_stdin_within_one_budget_and_give_it_back() {
    use crate::session::credit::{GrowthBudget, MAX_SESSION_WINDOW, SESSION_WINDOW};
    static BUDGET: GrowthBudget = GrowthBudget::new(20 << 20);
    let grow = ToCommand::Control(SessionControl::GrowStdin {
        window: MAX_SESSION_WINDOW,
    });
    let most = MAX_SESSION_WINDOW - SESSION_WINDOW;
    let mut first = CommandSession::new(false).sharing_stdin_growth(&BUDGET);
    first.on_message(grow.clone()).unwrap();
    assert_eq!(
        drain(&mut first),
        vec![CommandAction::Send(SessionEvent::StdinWindow(most))]
    );
    // The second gets what is left, and then nothing until more is given
    // back.
    let mut second = CommandSession::new(false).sharing_stdin_growth(&BUDGET);
    second.on_message(grow.clone()).unwrap();
    assert_eq!(
        drain(&mut second),
        vec![CommandAction::Send(SessionEvent::StdinWindow(
            (20 << 20) - most
        ))]
    );
    let mut third = CommandSession::new(false).sharing_stdin_growth(&BUDGET);
    third.on_message(grow.clone()).unwrap();
    assert_eq!(drain(&mut third), vec![], "no room left");
    drop(first);
    third.on_message(grow).unwrap();
    assert_eq!(
        drain(&mut third),
        vec![CommandAction::Send(SessionEvent::StdinWindow(most))],
        "the first's share came back"
    );
}

#[test]
fn on_a_long_path_a_grown_window_goes_out_paced_and_on_loopback_at_once() {
    use OutputStream::Stdout;
    use std::time::{Duration, Instant};
    const FRAME: usize = 128 << 10;
    // 4 ms is just short of a path paced: 8 MiB at its pace would take
    // 3.6 ms, more than the slack.
    for (rtt_ms, paced) in [(150, true), (4, false)] {
        let t0 = Instant::now();
        let mut s = CommandSession::new(false);
        // The first window goes out at once: no round trip is known yet.
        while s.sendable(Stdout, FRAME) > 0 {
            assert_eq!(s.output_ready_at(Stdout, t0), None);
            assert!(s.sent(Stdout, FRAME, t0));
        }
        // A round trip later the client credits it all and grows the
        // window to 8 MiB in one piece.
        let back = t0 + Duration::from_millis(rtt_ms);
        s.on_message(credit(Stdout, SESSION_WINDOW)).unwrap();
        let grow = SessionControl::GrowWindow {
            stream: Stdout,
            bytes: 6 << 20,
        };
        s.on_message(ToCommand::Control(grow)).unwrap();
        // As fast as the pace lets it: 8 MiB at 9/8 of 8 MiB per round
        // trip is 8/9 of one. On loopback, all of it at once.
        let mut now = back;
        let mut moved = 0;
        while s.sendable(Stdout, FRAME) > 0 {
            if let Some(at) = s.output_ready_at(Stdout, now) {
                assert!(paced, "paced on a {rtt_ms} ms path");
                now = at;
            }
            assert!(s.sent(Stdout, FRAME, now));
            moved += FRAME;
        }
        assert_eq!(moved, 8 << 20);
        let took = now - back;
        if paced {
            assert!(
                took >= Duration::from_millis(120) && took <= Duration::from_millis(135),
                "8 MiB went out over {took:?}"
            );
        } else {
            assert_eq!(took, Duration::ZERO);
        }
    }
}
