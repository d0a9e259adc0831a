use super::*;
use crate::session::{DATA_CHUNK, MIN_FRAME_COST};

fn out(stream: OutputStream, text: &'static str) -> ToClient {
    ToClient::Output(stream, Bytes::from_static(text.as_bytes()))
}

fn event(e: SessionEvent) -> ToClient {
    ToClient::Event(e)
}

/// Carry out every action as a driver whose writes succeed would.
fn drain(s: &mut ClientSession) -> Vec<ClientAction> {
    let mut done = Vec::new();
    while let Some(action) = s.next_action() {
        if let ClientAction::Write { stream, cost, .. } = &action {
            s.written(*stream, *cost, true);
        }
        done.push(action);
    }
    done
}

#[test]
fn output_is_written_in_order_and_credited_and_the_exit_comes_last() {
    use OutputStream::*;
    let mut s = ClientSession::local(false);
    for msg in [
        out(Stdout, "a"),
        out(Stderr, "b"),
        event(SessionEvent::Eof(Stdout)),
        out(Stderr, "c"),
        event(SessionEvent::Exit(ExitStatus::Code(7))),
    ] {
        s.on_message(msg).unwrap();
    }
    let kinds: Vec<String> = drain(&mut s)
        .iter()
        .map(|a| match a {
            ClientAction::Write { stream, data, .. } => {
                format!("write {stream:?} {}", String::from_utf8_lossy(data))
            }
            ClientAction::Send(SessionControl::Credit { stream, bytes }) => {
                format!("credit {stream:?} {bytes}")
            }
            ClientAction::CloseOutput(s) => format!("close {s:?}"),
            ClientAction::Finish(e) => format!("exit {}", e.exit_code()),
            other => format!("{other:?}"),
        })
        .collect();
    let cost = MIN_FRAME_COST;
    assert_eq!(
        kinds,
        [
            "write Stdout a".to_string(),
            format!("credit Stdout {cost}"),
            "write Stderr b".into(),
            format!("credit Stderr {cost}"),
            "close Stdout".into(),
            "write Stderr c".into(),
            format!("credit Stderr {cost}"),
            "exit 7".into(),
        ]
    );
    assert!(s.is_done());
}

#[test]
fn the_exit_waits_until_the_output_before_it_is_written() {
    let mut s = ClientSession::local(false);
    s.on_message(out(OutputStream::Stdout, "last words"))
        .unwrap();
    s.on_message(event(SessionEvent::Exit(ExitStatus::Code(0))))
        .unwrap();
    let Some(ClientAction::Write { stream, cost, .. }) = s.next_action() else {
        panic!("the write comes first")
    };
    assert_eq!(s.next_action(), None, "no exit while the write is pending");
    s.written(stream, cost, true);
    assert!(matches!(s.next_action(), Some(ClientAction::Send(_))));
    assert_eq!(
        s.next_action(),
        Some(ClientAction::Finish(Ending::Exit(ExitStatus::Code(0))))
    );
    assert_eq!(s.next_action(), None);
}

#[test]
fn data_after_eof_and_beyond_the_window_are_refused() {
    let mut s = ClientSession::local(false);
    s.on_message(event(SessionEvent::Eof(OutputStream::Stdout)))
        .unwrap();
    let late = s.on_message(out(OutputStream::Stdout, "x")).unwrap_err();
    assert!(matches!(
        late,
        ProtocolError::DataAfterEof(OutputStream::Stdout)
    ));
    let mut s = ClientSession::local(false);
    let window = Bytes::from(vec![1u8; SESSION_WINDOW as usize]);
    s.on_message(ToClient::Output(OutputStream::Stderr, window))
        .unwrap();
    let over = s.on_message(out(OutputStream::Stderr, "x")).unwrap_err();
    assert!(matches!(over, ProtocolError::Overrun { .. }));
    // Writing it out frees the window again.
    drain(&mut s);
    s.on_message(out(OutputStream::Stderr, "x")).unwrap();
}

#[test]
fn a_reader_that_went_away_closes_only_its_stream() {
    let mut s = ClientSession::local(false);
    s.on_message(out(OutputStream::Stdout, "1")).unwrap();
    s.on_message(out(OutputStream::Stdout, "2")).unwrap();
    s.on_message(out(OutputStream::Stderr, "3")).unwrap();
    let Some(ClientAction::Write { stream, cost, .. }) = s.next_action() else {
        panic!()
    };
    s.written(stream, cost, false);
    assert_eq!(
        s.next_action(),
        Some(ClientAction::Send(SessionControl::OutputClosed(
            OutputStream::Stdout
        )))
    );
    let rest = drain(&mut s);
    assert!(
        !rest.iter().any(|a| matches!(
            a,
            ClientAction::Write {
                stream: OutputStream::Stdout,
                ..
            }
        )),
        "nothing more is written to a gone reader: {rest:?}"
    );
    assert!(rest.iter().any(|a| matches!(
        a,
        ClientAction::Write {
            stream: OutputStream::Stderr,
            ..
        }
    )));
    // Later stdout is credited at once, unwritten.
    s.on_message(out(OutputStream::Stdout, "4")).unwrap();
    assert!(matches!(
        s.next_action(),
        Some(ClientAction::Send(SessionControl::Credit { .. }))
    ));
}

#[test]
fn served_stdout_waits_for_the_shims_stderr_to_be_written() {
    use OutputStream::*;
    let mut s = ClientSession::split(Side::Local, Side::Local, Side::Forwarded, false);
    s.on_message(out(Stderr, "Permission denied")).unwrap();
    s.on_message(out(Stdout, "status")).unwrap();
    s.on_message(event(SessionEvent::Exit(ExitStatus::Code(23))))
        .unwrap();
    assert!(matches!(
        s.next_action(),
        Some(ClientAction::Forward(ToClient::Output(Stderr, _)))
    ));
    assert_eq!(s.next_action(), None, "stdout waits for the shim");
    s.on_shim_control(&SessionControl::Credit {
        stream: Stderr,
        bytes: MIN_FRAME_COST,
    });
    assert!(matches!(
        s.next_action(),
        Some(ClientAction::Write { stream: Stdout, .. })
    ));
}

#[test]
fn stdin_credit_goes_where_stdin_is_read() {
    let mut local = ClientSession::local(false);
    let window = local.stdin_sendable(usize::MAX);
    assert_eq!(window, SESSION_WINDOW as usize);
    assert!(local.stdin_sent(window));
    assert_eq!(local.stdin_sendable(usize::MAX), 0, "the window is spent");
    assert!(!local.stdin_sent(1));
    local
        .on_message(event(SessionEvent::StdinCredit(900)))
        .unwrap();
    assert_eq!(local.next_action(), None);
    assert_eq!(local.stdin_sendable(usize::MAX), 900);
    // Credit for more than was sent is a lie.
    assert!(matches!(
        local.on_message(event(SessionEvent::StdinCredit(SESSION_WINDOW))),
        Err(ProtocolError::CreditBeyondSent { .. })
    ));
    let mut split = ClientSession::split(Side::Forwarded, Side::Local, Side::Local, false);
    split
        .on_message(event(SessionEvent::StdinCredit(900)))
        .unwrap();
    assert!(matches!(
        split.next_action(),
        Some(ClientAction::Forward(_))
    ));
}

#[test]
fn eof_once_signals_and_window_changes_only_for_a_pty() {
    let mut s = ClientSession::local(false);
    assert_eq!(s.stdin_eof(), Some(SessionControl::Eof));
    assert_eq!(s.stdin_eof(), None);
    assert_eq!(s.stdin_sendable(4096), 0, "no stdin after its end of file");
    let mut ended = ClientSession::local(false);
    ended
        .on_message(event(SessionEvent::Exit(ExitStatus::Code(0))))
        .unwrap();
    assert_eq!(ended.stdin_eof(), None, "no EOF for a command that is gone");
    assert_eq!(ended.stdin_sendable(4096), 0);
    assert_eq!(s.signal(15), SessionControl::Signal(15));
    let size = PtyRequest { cols: 1, rows: 1 };
    assert_eq!(s.resize(size), None);
    let pty = ClientSession::local(true);
    assert_eq!(pty.resize(size), Some(SessionControl::WindowChange(size)));
}

#[test]
fn endings_give_openssh_exit_codes() {
    assert_eq!(Ending::Exit(ExitStatus::Code(300)).exit_code(), 300 & 0xff);
    let killed = ExitStatus::Signal {
        signal: 9,
        core_dumped: false,
    };
    assert_eq!(Ending::Exit(killed).exit_code(), 255);
    assert_eq!(Ending::Error("x".into()).exit_code(), 255);
    let mut s = ClientSession::local(false);
    s.on_message(ToClient::Dead("no route".into())).unwrap();
    s.on_message(out(OutputStream::Stdout, "ignored after the end"))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![ClientAction::Finish(Ending::Dead("no route".into()))]
    );
}

#[test]
fn stdin_asks_once_for_a_wider_window_and_sends_into_what_was_granted() {
    let mut s = ClientSession::local(false);
    assert_eq!(s.stdin_window(), (u64::from(SESSION_WINDOW), 0));
    assert_eq!(
        s.ask_stdin_window(3 << 20),
        Some(SessionControl::GrowStdin { window: 3 << 20 })
    );
    // Not again before the answer, nor for less.
    assert_eq!(s.ask_stdin_window(3 << 20), None);
    assert_eq!(s.ask_stdin_window(1 << 20), None);
    // Until granted, the old window.
    assert!(s.stdin_sent(SESSION_WINDOW as usize));
    assert_eq!(s.stdin_sendable(DATA_CHUNK), 0);
    s.on_message(event(SessionEvent::StdinWindow(1 << 20)))
        .unwrap();
    assert_eq!(s.stdin_sendable(usize::MAX), 1 << 20);
    assert_eq!(s.stdin_window(), (3 << 20, u64::from(SESSION_WINDOW)));
    // A grant beyond the most a stream may hold is a broken command end.
    assert!(
        s.on_message(event(SessionEvent::StdinWindow(MAX_SESSION_WINDOW)))
            .is_err()
    );
    // Asking stops at the most, and once stdin is over.
    let mut s = ClientSession::local(false);
    assert_eq!(
        s.ask_stdin_window(u64::MAX),
        Some(SessionControl::GrowStdin {
            window: MAX_SESSION_WINDOW
        })
    );
    let mut s = ClientSession::local(false);
    s.stdin_eof();
    assert_eq!(s.ask_stdin_window(4 << 20), None);
    // A stdin the shim reads: its grant is the shim's.
    let mut s = ClientSession::split(Side::Forwarded, Side::Local, Side::Local, false);
    assert_eq!(s.ask_stdin_window(4 << 20), None);
    s.on_message(event(SessionEvent::StdinWindow(1 << 20)))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![ClientAction::Forward(event(SessionEvent::StdinWindow(
            1 << 20
        )))]
    );
}
