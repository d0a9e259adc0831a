//! The `ssh` shim: open one session through the host, pump stdio, exit like
//! OpenSSH's client would.
//!
//! The shim makes a fresh socketpair, hands one end to the host over the
//! inherited control socket (SCM_RIGHTS) and speaks frames on the other, so
//! any number of shims run at once, each on a private channel. It is
//! deliberately synchronous: one thread reads stdin under the credit the
//! agent grants, the main thread writes stdout and stderr and grants credit
//! back once the bytes are written. Exit only comes after all output.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};

use bytes::{Bytes, BytesMut};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, Shutdown, SockFlag, SockType, sendmsg, shutdown,
    socketpair,
};
use nix::sys::stat::{SFlag, fstat};
use router_core::frame::{DEFAULT_MAX_PAYLOAD, Encoding, Frame, Header};
use router_core::message::{
    DATA_CHUNK, ExitStatus, FALLBACK_REFUSAL, FALLBACK_WELCOME, HOST_ID, OutputStream, PtyRequest,
    RemoteCommand, SESSION_HELLO, SESSION_WINDOW, SessionControl, SessionEvent, SessionRequest,
    handle, handover,
};

use crate::argv::{self, SshInvocation, USAGE};
use crate::{env, sys, terminal};

/// Run the ssh shim on `args` (argv without argv\[0\]); returns the exit status.
pub fn run_ssh(args: &[String]) -> i32 {
    let inv = match argv::parse(args) {
        Ok(inv) => inv,
        Err(e) => {
            crate::say!("{e}");
            if e.wants_usage() {
                crate::say!("{USAGE}");
            }
            return 255;
        }
    };
    let log = Log::open(&inv);
    if inv.version {
        crate::say!(
            "mitogen-fakessh {} (ssh shim, OpenSSH-compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    if inv.print_config {
        print_config(&inv);
        return 0;
    }
    if let Some(what) = &inv.unsupported {
        crate::say!("ssh: {what} is not supported by mitogen-fakessh");
        return 255;
    }
    for ignored in &inv.ignored {
        log.debug(&format!(
            "option {ignored} has no effect under mitogen-fakessh"
        ));
    }
    let request = match session_request(&inv, &log) {
        Ok(r) => r,
        Err(e) => {
            crate::say!("{e}");
            return 255;
        }
    };
    log.debug(&format!(
        "opening session to {} for {:?}",
        inv.host, request.command
    ));
    let handover = Handover::choose(inv.stdin_null, request.pty.is_some());
    let code = match Session::open(&request, handover, &log) {
        Ok(session) => {
            if request.pty.is_some() {
                terminal::enter_raw();
            }
            let stdin = if handover.stdin {
                StdinSource::HandedOver
            } else if inv.stdin_null {
                StdinSource::Null
            } else {
                StdinSource::Pumped
            };
            session.run(stdin, &log)
        }
        Err(e) => {
            crate::say!("ssh: {e}");
            255
        }
    };
    terminal::restore();
    code
}

/// OpenSSH's RequestTTY rules: `-T` never; `-tt` always; `-t` (or no
/// command, for a login shell) when stdin is a terminal. The size comes from
/// our own terminal, else 80x24.
fn pty_wanted(inv: &SshInvocation, log: &Log) -> Option<PtyRequest> {
    use std::io::IsTerminal;
    let stdin_tty = std::io::stdin().is_terminal() && !inv.stdin_null;
    let mode = inv.option("RequestTTY").map(str::to_ascii_lowercase);
    let want = if inv.no_tty || mode.as_deref() == Some("no") {
        false
    } else if inv.tty_force >= 2 || mode.as_deref() == Some("force") {
        true
    } else if inv.tty_force == 1 || mode.as_deref() == Some("yes") {
        if !stdin_tty {
            crate::say!("Pseudo-terminal will not be allocated because stdin is not a terminal.");
        }
        stdin_tty
    } else {
        inv.command.is_empty() && !inv.subsystem && stdin_tty
    };
    if !want {
        return None;
    }
    let (cols, rows) = sys::window_size(std::io::stdin().as_fd())
        .or_else(|| sys::window_size(std::io::stdout().as_fd()))
        .unwrap_or((80, 24));
    log.debug(&format!("requesting a {cols}x{rows} pty"));
    Some(PtyRequest { cols, rows })
}

fn session_request(inv: &SshInvocation, log: &Log) -> Result<SessionRequest, String> {
    let mut command = inv.command_string();
    if let Some(rc) = inv
        .option("RemoteCommand")
        .filter(|v| inv.command.is_empty() && !v.eq_ignore_ascii_case("none"))
    {
        command = rc.to_string();
    }
    let command = if inv.subsystem {
        if command.is_empty() {
            return Err(format!("{}\n{USAGE}", "ssh: -s requires a subsystem name"));
        }
        RemoteCommand::Subsystem(command)
    } else if command.is_empty() {
        RemoteCommand::Shell
    } else {
        RemoteCommand::Exec(command)
    };
    let pty = pty_wanted(inv, log);
    let mut env = requested_env(inv);
    if let Some(term) = std::env::var("TERM").ok().filter(|_| pty.is_some()) {
        env.push(("TERM".into(), term));
    }
    Ok(SessionRequest {
        host: inv.host.clone(),
        user: inv.user.clone(),
        port: inv.port,
        command,
        env,
        pty,
        ssh_options: connection_options(inv),
        ssh_config_file: inv.config_file.as_deref().map(absolute),
    })
}

/// A path the client named, made absolute from our directory: the host
/// resolves paths from its own. `~/...` and `none` stay as they are.
fn absolute(path: &str) -> String {
    if path.starts_with('/') || path.starts_with('~') || path == "none" {
        return path.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path).display().to_string(),
        Err(_) => path.to_string(),
    }
}

/// The `-o` options for the host's on-demand connection, IdentityFile
/// paths made [`absolute`].
fn connection_options(inv: &SshInvocation) -> Vec<(String, String)> {
    inv.options
        .iter()
        .map(
            |(key, value)| match key.eq_ignore_ascii_case("IdentityFile") {
                true => (key.clone(), absolute(value)),
                false => (key.clone(), value.clone()),
            },
        )
        .collect()
}

/// Variables named by `SendEnv` patterns (from our environment) and `SetEnv`
/// pairs. The agent applies its own accept-list, as sshd's AcceptEnv does.
fn requested_env(inv: &SshInvocation) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for set in inv.option_values("SetEnv") {
        for pair in set.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=')
                && !out.iter().any(|(n, _)| n == k)
            {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    let patterns: Vec<&str> = inv
        .option_values("SendEnv")
        .flat_map(str::split_whitespace)
        .collect();
    for (k, v) in std::env::vars() {
        if patterns.iter().any(|p| glob_match(p, &k)) && !out.iter().any(|(n, _)| *n == k) {
            out.push((k, v));
        }
    }
    out
}

/// ssh_config pattern matching: `*` and `?`.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// `ssh -G`: what git's probe needs (user, hostname, port) and the -o options.
fn print_config(inv: &SshInvocation) {
    let user = inv
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "root".into());
    let mut out = format!(
        "user {user}\nhostname {}\nport {}\n",
        inv.host,
        inv.port.unwrap_or(22)
    );
    for (k, v) in &inv.options {
        let k = k.to_ascii_lowercase();
        if !matches!(k.as_str(), "user" | "port" | "hostname") {
            out.push_str(&format!("{k} {v}\n"));
        }
    }
    print!("{out}");
}

/// `-v` diagnostics, to stderr or the `-E` file.
struct Log {
    level: u8,
    file: Option<Mutex<std::fs::File>>,
}

impl Log {
    fn open(inv: &SshInvocation) -> Log {
        let file = inv.log_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(Mutex::new)
        });
        Log {
            level: if inv.quiet { 0 } else { inv.verbose },
            file,
        }
    }

    fn debug(&self, msg: &str) {
        if self.level == 0 {
            return;
        }
        let line = format!("debug1: {msg}\n");
        match &self.file {
            Some(f) => {
                let _ = f.lock().map(|mut f| f.write_all(line.as_bytes()));
            }
            None => {
                use std::io::Write as _;
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

/// Credit for our stdin: bytes the agent will still accept.
struct StdinWindow {
    credit: Mutex<u64>,
    ready: Condvar,
}

impl StdinWindow {
    /// Block until some credit is available; returns at most `max` of it.
    fn wait(&self, max: usize) -> usize {
        let mut credit = self.credit.lock().unwrap_or_else(|p| p.into_inner());
        while *credit == 0 {
            credit = self.ready.wait(credit).unwrap_or_else(|p| p.into_inner());
        }
        (*credit).min(max as u64) as usize
    }

    fn consume(&self, n: usize) {
        let mut credit = self.credit.lock().unwrap_or_else(|p| p.into_inner());
        *credit = credit.saturating_sub(n as u64);
    }

    fn grant(&self, n: u32) {
        let mut credit = self.credit.lock().unwrap_or_else(|p| p.into_inner());
        *credit = credit.saturating_add(n as u64);
        self.ready.notify_all();
    }
}

/// Frames to the host, from either thread.
struct Outbox {
    sock: Mutex<UnixStream>,
}

impl Outbox {
    fn send(&self, frame: &Frame) -> std::io::Result<()> {
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.write_all(&frame.header_bytes())?;
        sock.write_all(&frame.payload)
    }

    /// A raw-data frame straight from `data`, without copying it. Header
    /// and payload go in one `writev`, so the host wakes once per frame, not
    /// once for a lone header and again for its payload.
    fn send_data(&self, handle: u32, data: &[u8]) -> std::io::Result<()> {
        let head = Frame::encode_header(&header(handle), Encoding::Bytes, data.len());
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut head, mut data) = (&head[..], data);
        while !head.is_empty() {
            match sock.write_vectored(&[IoSlice::new(head), IoSlice::new(data)]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) if n < head.len() => head = &head[n..],
                Ok(n) => {
                    data = &data[n - head.len()..];
                    head = &[];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        sock.write_all(data)
    }

    fn control(&self, control: &SessionControl) -> std::io::Result<()> {
        self.send(&Frame::cbor(header(handle::SESSION_CONTROL), control))
    }
}

fn header(handle: u32) -> Header {
    Header {
        dst: HOST_ID,
        handle,
        ..Header::default()
    }
}

/// Which of our standard descriptors the host serves itself. Pipes and
/// sockets go over with the session socket, so their data never passes
/// through this process; a tty (raw mode, window size, job control) or a
/// regular file (which epoll cannot watch) stays here, and a pty session
/// keeps everything here.
#[derive(Clone, Copy, Debug, Default)]
struct Handover {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

impl Handover {
    fn choose(stdin_null: bool, pty: bool) -> Handover {
        if pty {
            return Handover::default();
        }
        Handover {
            stdin: !stdin_null && pipe_or_socket(std::io::stdin().as_fd()),
            stdout: pipe_or_socket(std::io::stdout().as_fd()),
            stderr: pipe_or_socket(std::io::stderr().as_fd()),
        }
    }

    /// Each standard stream: handed over?, its hello bit, its descriptor.
    fn streams(self) -> [(bool, u8, std::os::fd::RawFd); 3] {
        [
            (self.stdin, handover::STDIN, 0),
            (self.stdout, handover::STDOUT, 1),
            (self.stderr, handover::STDERR, 2),
        ]
    }

    fn bits(self) -> u8 {
        self.streams()
            .iter()
            .filter(|(on, _, _)| *on)
            .fold(0, |bits, (_, bit, _)| bits | bit)
    }

    fn fds(self) -> Vec<std::os::fd::RawFd> {
        self.streams()
            .iter()
            .filter(|(on, _, _)| *on)
            .map(|(_, _, fd)| *fd)
            .collect()
    }

    /// Once the host holds them, our copies of stdin and stdout become
    /// /dev/null: the host's close (or half-close) of stdout must be the
    /// one the reader sees. stderr stays, for our own last words.
    fn let_go(self) {
        let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        else {
            return;
        };
        if self.stdin {
            let _ = nix::unistd::dup2_stdin(&null);
        }
        if self.stdout {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
}

fn pipe_or_socket(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

/// Where the remote command's stdin comes from.
enum StdinSource {
    /// `-n`: nothing; EOF at once.
    Null,
    /// Our stdin, read by us.
    Pumped,
    /// Our stdin, read by the host (see [`Handover`]).
    HandedOver,
}

struct Session {
    outbox: Arc<Outbox>,
    reader: UnixStream,
    window: Arc<StdinWindow>,
}

impl Session {
    /// Hand a fresh socket to the host and send the request on it.
    fn open(request: &SessionRequest, handover: Handover, log: &Log) -> Result<Session, String> {
        let control = control_socket()?;
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        pass_session(control.as_fd(), &theirs, handover).map_err(|e| {
            format!(
                "cannot reach the mitogen-fakessh host over {}: {e} (did the host exit?)",
                control.describe()
            )
        })?;
        drop(theirs);
        handover.let_go();
        log.debug(&format!("session socket handed to the host ({handover:?})"));
        let sock = UnixStream::from(mine);
        let reader = sock.try_clone().map_err(|e| format!("dup: {e}"))?;
        let outbox = Arc::new(Outbox {
            sock: Mutex::new(sock),
        });
        outbox
            .send(&Frame::cbor(header(handle::SESSION_OPEN), request))
            .map_err(|e| format!("sending the session request: {e}"))?;
        Ok(Session {
            outbox,
            reader,
            window: Arc::new(StdinWindow {
                credit: Mutex::new(SESSION_WINDOW as u64),
                ready: Condvar::new(),
            }),
        })
    }

    fn run(mut self, stdin: StdinSource, log: &Log) -> i32 {
        forward_signals(self.outbox.clone());
        match stdin {
            StdinSource::Null => {
                let _ = self.outbox.control(&SessionControl::Eof);
            }
            StdinSource::Pumped => {
                let outbox = self.outbox.clone();
                let window = self.window.clone();
                std::thread::spawn(move || pump_stdin(&outbox, &window));
            }
            StdinSource::HandedOver => {}
        }
        let mut outputs = Outputs::default();
        let mut buf = BytesMut::with_capacity(256 << 10);
        loop {
            loop {
                match Frame::decode(&mut buf, DEFAULT_MAX_PAYLOAD) {
                    Ok(Some(frame)) => {
                        if let Some(code) = self.on_frame(frame, &mut outputs, log) {
                            return code;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        crate::say!("ssh: bad data from the mitogen-fakessh host: {e}");
                        return 255;
                    }
                }
            }
            match sys::read_into(self.reader.as_fd(), &mut buf, 256 << 10) {
                Ok(0) => {
                    crate::say!(
                        "ssh: connection to the mitogen-fakessh host lost before the command finished"
                    );
                    return 255;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::say!("ssh: reading from the mitogen-fakessh host: {e}");
                    return 255;
                }
            }
        }
    }

    /// Handle one frame; `Some(code)` ends the session.
    fn on_frame(&mut self, frame: Frame, outputs: &mut Outputs, log: &Log) -> Option<i32> {
        if frame.is_dead() {
            crate::say!("ssh: {}", frame.dead_reason());
            return Some(255);
        }
        match frame.header.handle {
            handle::SESSION_STDOUT => self.output(OutputStream::Stdout, frame.payload, outputs),
            handle::SESSION_STDERR => self.output(OutputStream::Stderr, frame.payload, outputs),
            handle::SESSION_EVENT => match frame.decode_cbor::<SessionEvent>("session event") {
                Ok(SessionEvent::StdinCredit(n)) => self.window.grant(n),
                Ok(SessionEvent::Eof(OutputStream::Stdout)) => close_stdout(),
                Ok(SessionEvent::Eof(OutputStream::Stderr)) => {}
                Ok(SessionEvent::Exit(ExitStatus::Code(code))) => return Some(code & 0xff),
                Ok(SessionEvent::Exit(ExitStatus::Signal {
                    signal,
                    core_dumped,
                })) => {
                    log.debug(&format!(
                        "remote command killed by signal {signal}{}",
                        if core_dumped { " (core dumped)" } else { "" }
                    ));
                    return Some(255);
                }
                Ok(SessionEvent::Error(msg)) => {
                    crate::say!("ssh: {msg}");
                    return Some(255);
                }
                Err(e) => {
                    crate::say!("ssh: {e}");
                    return Some(255);
                }
            },
            other => log.debug(&format!("ignoring a frame for handle {other}")),
        }
        None
    }

    fn output(&mut self, stream: OutputStream, data: Bytes, outputs: &mut Outputs) {
        let closed = match stream {
            OutputStream::Stdout => &mut outputs.stdout_closed,
            OutputStream::Stderr => &mut outputs.stderr_closed,
        };
        if !*closed {
            let written = match stream {
                OutputStream::Stdout => write_fd(std::io::stdout().as_fd(), &data),
                OutputStream::Stderr => write_fd(std::io::stderr().as_fd(), &data),
            };
            if written.is_err() {
                *closed = true;
                let _ = self.outbox.control(&SessionControl::OutputClosed(stream));
            }
        }
        let _ = self.outbox.control(&SessionControl::Credit {
            stream,
            bytes: data.len() as u32,
        });
    }
}

#[derive(Default)]
struct Outputs {
    stdout_closed: bool,
    stderr_closed: bool,
}

/// SIGINT, SIGTERM and SIGHUP go to the remote command's process group;
/// then the shim dies of the same signal, as OpenSSH's client does. The
/// signals are blocked in every thread and taken by one `sigwait`er, so no
/// handler runs in signal context.
fn forward_signals(outbox: Arc<Outbox>) {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask, raise};
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        loop {
            let Ok(sig) = set.wait() else { return };
            if sig == Signal::SIGWINCH {
                // Window changes only matter to a pty session.
                if let Some((cols, rows)) = sys::window_size(std::io::stdin().as_fd()) {
                    let _ =
                        outbox.control(&SessionControl::WindowChange(PtyRequest { cols, rows }));
                }
                continue;
            }
            let _ = outbox.control(&SessionControl::Signal(sig as i32));
            terminal::restore();
            let _ = sys::default_disposition(sig);
            let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = raise(sig);
            std::process::exit(128 + sig as i32);
        }
    });
}

/// The way to the host.
enum Control {
    /// The socket the host left open across exec (fd number in the environment).
    Inherited(BorrowedFd<'static>),
    /// Its fallback socket, for when a program between the host and us
    /// closed inherited descriptors (Python's subprocess does by default).
    Connected(OwnedFd, String),
}

impl Control {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Control::Inherited(fd) => *fd,
            Control::Connected(fd, _) => fd.as_fd(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Control::Inherited(fd) => format!("fd {}", fd.as_raw_fd()),
            Control::Connected(_, path) => path.clone(),
        }
    }
}

fn control_socket() -> Result<Control, String> {
    let inherited = match std::env::var(env::CONTROL_FD) {
        Ok(text) => text
            .parse::<i32>()
            .map_err(|_| format!("{}={text:?} is not an fd number", env::CONTROL_FD))
            .and_then(sys::inherited_control_socket),
        Err(_) => Err(format!(
            "not running under mitogen-fakessh ({} is unset); run your command as: mitogen-fakessh [--to CHAIN] -- COMMAND",
            env::CONTROL_FD
        )),
    };
    let why = match inherited {
        Ok(fd) => return Ok(Control::Inherited(fd)),
        Err(why) => why,
    };
    let Some(path) = std::env::var_os(env::CONTROL_PATH) else {
        return Err(why);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let fd = connect_seqpacket(std::path::Path::new(&path)).map_err(|e| {
        format!("{why}, and the host's socket {shown} is not reachable either: {e}")
    })?;
    await_welcome(fd.as_fd()).map_err(|e| format!("the mitogen-fakessh host at {shown} {e}"))?;
    Ok(Control::Connected(fd, shown))
}

/// How long the host may take to answer a connection on its fallback
/// socket. It answers at once unless it is wedged; this only bounds a hang.
const WELCOME_TIMEOUT_MS: u16 = 30_000;

/// Read the host's greeting on a fresh fallback connection: a welcome, or
/// the reason it refuses us.
fn await_welcome(fd: BorrowedFd<'_>) -> Result<(), String> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::from(WELCOME_TIMEOUT_MS)) {
            Ok(0) => return Err("did not answer within 30 s".into()),
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    }
    let mut buf = [0u8; 512];
    let n = loop {
        match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("closed the connection ({e})")),
            Ok(n) => break n,
        }
    };
    match &buf[..n] {
        [FALLBACK_WELCOME] => Ok(()),
        [FALLBACK_REFUSAL, why @ ..] => Err(format!(
            "refused this session: {}",
            String::from_utf8_lossy(why)
        )),
        [] => Err("closed the connection without a word".into()),
        _ => Err("answered with something that is not a mitogen-fakessh greeting".into()),
    }
}

fn connect_seqpacket(path: &std::path::Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{UnixAddr, connect, socket};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// Send the session socket, and the standard descriptors the host is to
/// serve, over the control socket: one SEQPACKET message per session.
fn pass_session(control: BorrowedFd<'_>, sock: &OwnedFd, handover: Handover) -> nix::Result<()> {
    let mut fds = vec![sock.as_raw_fd()];
    fds.extend(handover.fds());
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let hello = [SESSION_HELLO, handover.bits()];
    let iov = [std::io::IoSlice::new(&hello)];
    loop {
        match sendmsg::<()>(
            control.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// Read stdin under credit and forward it; EOF (or a read error) half-closes
/// the remote stdin only.
fn pump_stdin(outbox: &Outbox, window: &StdinWindow) {
    let mut buf = vec![0u8; DATA_CHUNK];
    let mut stdin = std::io::stdin().lock();
    loop {
        let room = window.wait(DATA_CHUNK);
        let n = match stdin.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if wait_for(std::io::stdin().as_fd(), PollFlags::POLLIN).is_err() {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        window.consume(n);
        if outbox.send_data(handle::SESSION_STDIN, &buf[..n]).is_err() {
            return;
        }
    }
    let _ = outbox.control(&SessionControl::Eof);
}

/// Write all of `data`. The descriptor may be non-blocking (clients hand us
/// sockets they share with themselves), so EAGAIN means "wait", not "gone".
fn write_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait_for(fd, PollFlags::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Block until `fd` is ready for `what` (or has hung up / failed, which the
/// next read or write then reports).
fn wait_for(fd: BorrowedFd<'_>, what: PollFlags) -> nix::Result<()> {
    let mut fds = [PollFd::new(fd, what)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// Remote stdout is done: a socket gets `shutdown(SHUT_WR)` (scp and sftp pass
/// one socketpair as stdin and stdout, so a close would not be seen); anything
/// else is replaced by /dev/null, which closes our copy.
fn close_stdout() {
    let stdout = std::io::stdout();
    let is_socket = fstat(stdout.as_fd())
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
        .unwrap_or(false);
    if is_socket {
        let _ = shutdown(stdout.as_raw_fd(), Shutdown::Write);
    } else if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("GIT_PROTOCOL", "GIT_PROTOCOL"));
        assert!(!glob_match("LC_*", "LANG"));
        assert!(glob_match("?ANG", "LANG"));
    }
}
