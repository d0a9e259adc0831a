//! Forwarding through a chain whose target the host cannot reach (network
//! namespaces): `-L` to a service only the target can reach (16 MiB each
//! way, 20 at once), `-D` for curl, `-R` back to this side, `-W` for a real
//! OpenSSH client's ProxyCommand, `-A` (also after sudo, and nobody else
//! can use it), `-f -N`, and the bad cases.
#![cfg(feature = "host")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{TwoHops, spawn_in};
use common::sshd::require_sshd;
use common::*;

/// An echo server in Python (no extra package), on `addr:port`, or on
/// the Unix socket `path` with `unix path`.
const ECHO: &str = "import socket,sys,threading
if sys.argv[1]=='unix':
    s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[2])
else:
    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
    s.bind((sys.argv[1],int(sys.argv[2])))
s.listen(64)
def echo(c):
    while True:
        d=c.recv(1<<16)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c,_=s.accept(); threading.Thread(target=echo,args=(c,),daemon=True).start()";

/// The chain's world: bastion and target sshds, an ssh config naming
/// them, and servers only the target can reach (its own loopback).
struct World {
    hops: TwoHops,
    servers: Vec<Child>,
}

const ECHO_PORT: u16 = 7007;
const WEB_PORT: u16 = 8008;

impl World {
    fn new() -> World {
        require_sshd();
        require("ip");
        require("python3");
        require("curl");
        let hops = TwoHops::start();
        let (topo, dir) = (&hops.topo, &hops.dir);
        let web = dir.path().join("web");
        std::fs::create_dir(&web).unwrap();
        std::fs::write(web.join("marker"), "only the target serves this\n").unwrap();
        let unix_echo = dir.path().join("echo.sock");
        let servers = vec![
            spawn_in(
                &topo.target_ns,
                &["python3", "-c", ECHO, "127.0.0.1", &ECHO_PORT.to_string()],
            ),
            spawn_in(
                &topo.target_ns,
                &[
                    "python3",
                    "-c",
                    ECHO,
                    "unix",
                    &unix_echo.display().to_string(),
                ],
            ),
            spawn_in(
                &topo.target_ns,
                &[
                    "python3",
                    "-m",
                    "http.server",
                    &WEB_PORT.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    &web.display().to_string(),
                ],
            ),
        ];
        let world = World { hops, servers };
        // Both servers answer before a test relies on them.
        let up = world.run(&format!(
            "for i in $(seq 100); do [ -S '{unix}' ] && ip netns exec {ns} bash -c 'exec 3<>/dev/tcp/127.0.0.1/{ECHO_PORT}' 2>/dev/null && ip netns exec {ns} curl -sf http://127.0.0.1:{WEB_PORT}/marker >/dev/null && exit 0; sleep 0.1; done; exit 1",
            ns = world.hops.topo.target_ns,
            unix = world.unix_echo().display(),
        ));
        up.expect_code(0);
        world
    }

    /// The Unix socket the target's echo server listens on.
    fn unix_echo(&self) -> std::path::PathBuf {
        self.hops.dir.path().join("echo.sock")
    }

    /// `sh -c SCRIPT` on this machine.
    fn run(&self, script: &str) -> Outcome {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script]);
        run_with(cmd, b"", Duration::from_secs(120))
    }

    /// mitogen-fakessh through `chain`, running `script` in bash.
    fn through(&self, chain: &str, script: &str) -> Outcome {
        fakessh(&[
            "--ssh-config",
            &self.hops.cfg,
            "--to",
            chain,
            "--",
            "bash",
            "-c",
            script,
        ])
    }

    /// mitogen-fakessh in the background running `script`, which creates
    /// `ready` once its forwards are up, then waits until `done` exists.
    fn background(&self, chain: &str, forward: &str) -> (Child, std::path::PathBuf) {
        let ready = self
            .hops
            .dir
            .path()
            .join(format!("ready-{}", std::process::id()));
        let done = self.hops.dir.path().join("done");
        let _ = std::fs::remove_file(&ready);
        let script = format!(
            "ssh -f -N {forward} target && touch '{r}' && while [ ! -e '{d}' ]; do sleep 0.1; done",
            r = ready.display(),
            d = done.display()
        );
        let child = Command::new(bin())
            .args([
                "--ssh-config",
                &self.hops.cfg,
                "--to",
                chain,
                "--",
                "sh",
                "-c",
                &script,
            ])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the forward never came up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (child, done)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// A free port on this machine's loopback.
fn free_port() -> u16 {
    common::sshd::free_port()
}

/// `len` bytes there and back through `port`, compared.
fn echo_through(port: u16, len: usize, seed: u64) {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let writer = sock.try_clone().unwrap();
    echo_over(sock, writer, len, seed);
}

/// `len` bytes there and back through the Unix socket `path`, compared.
fn echo_through_unix(path: &Path, len: usize, seed: u64) {
    let sock = std::os::unix::net::UnixStream::connect(path).unwrap();
    let writer = sock.try_clone().unwrap();
    echo_over(sock, writer, len, seed);
}

/// `len` random bytes written to `writer` while read back from `sock`.
fn echo_over(mut sock: impl Read, mut writer: impl Write + Send + 'static, len: usize, seed: u64) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    write_random_file(tmp.path(), len, seed);
    let data = std::fs::read(tmp.path()).unwrap();
    let sent = data.clone();
    let pump = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; len];
    sock.read_exact(&mut back).unwrap();
    pump.join().unwrap();
    assert!(back == data, "{len} bytes came back different");
}

fn finish(mut child: Child, done: &Path) {
    std::fs::write(done, "").unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root, sshd and network namespaces (run ./tests/run)"]
fn local_forward_reaches_what_only_the_target_can() {
    let world = World::new();
    let port = free_port();
    let (child, done) = world.background(
        "ssh:bastion,ssh:target",
        &format!("-L {port}:127.0.0.1:{ECHO_PORT}"),
    );
    echo_through(port, 16 << 20, 5);
    let many: Vec<_> = (0..20)
        .map(|i| std::thread::spawn(move || echo_through(port, 64 << 10, i)))
        .collect();
    for t in many {
        t.join().unwrap();
    }
    finish(child, &done);
    // The wrapped command is over: so is the forward.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the forward outlived its run"
    );
}

#[test]
#[ignore = "needs root, sshd and network namespaces (run ./tests/run)"]
fn local_forward_to_and_from_unix_sockets() {
    let world = World::new();
    let port = free_port();
    let listen = world.hops.dir.path().join("listen.sock");
    let (child, done) = world.background(
        "ssh:bastion,ssh:target",
        &format!(
            "-L {port}:{remote} -L {listen}:127.0.0.1:{ECHO_PORT}",
            remote = world.unix_echo().display(),
            listen = listen.display()
        ),
    );
    // A TCP port to the target's Unix socket, a Unix socket to its port.
    echo_through(port, 4 << 20, 21);
    echo_through_unix(&listen, 4 << 20, 22);
    let mode = std::fs::metadata(&listen).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o077,
        0,
        "listen.sock is {mode:o}: others may connect"
    );
    finish(child, &done);
}

#[test]
#[ignore = "needs root, sshd, curl and network namespaces (run ./tests/run)"]
fn dynamic_forward_serves_curl() {
    let world = World::new();
    let port = free_port();
    let out = world.through(
        "ssh:bastion,ssh:target",
        &format!(
            "ssh -f -N -D {port} target && curl -s --socks5-hostname 127.0.0.1:{port} http://127.0.0.1:{WEB_PORT}/marker && \
             curl -s --socks4a 127.0.0.1:{port} http://localhost:{WEB_PORT}/marker && \
             printf 'garbage\\r\\n' | (exec 3<>/dev/tcp/127.0.0.1/{port}; cat >&3; cat <&3) ; \
             curl -s --socks5 127.0.0.1:{port} http://127.0.0.1:{WEB_PORT}/marker"
        ),
    );
    out.assert_no_panic().expect_code(0);
    // SOCKS garbage closed that client only; the next one was served.
    assert_eq!(
        out.stdout_text(),
        "only the target serves this\n".repeat(3),
        "{}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root, sshd, curl and network namespaces (run ./tests/run)"]
fn remote_forward_exposes_a_local_service() {
    let world = World::new();
    let local = free_port();
    let web = world.hops.dir.path().join("local-web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("here"), "served on the client's side\n").unwrap();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &local.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&web)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    world
        .run(&format!("for i in $(seq 100); do curl -sf http://127.0.0.1:{local}/here >/dev/null && exit 0; sleep 0.1; done; exit 1"))
        .expect_code(0);
    let remote = 9009;
    let out = world.through(
        "ssh:bastion,ssh:target",
        &format!(
            "ssh -R {remote}:127.0.0.1:{local} target 'curl -s http://127.0.0.1:{remote}/here' && \
             ssh -R 0:127.0.0.1:{local} target true"
        ),
    );
    let _ = server.kill();
    let _ = server.wait();
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "served on the client's side\n");
    assert!(
        out.stderr_text().contains("Allocated port ")
            && out
                .stderr_text()
                .contains(&format!("for remote forward to 127.0.0.1:{local}")),
        "{}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs root, sshd and network namespaces (run ./tests/run)"]
fn stdio_forward_carries_a_real_openssh_client() {
    let world = World::new();
    // The target's banner, through the bastion.
    let out = world.through(
        "ssh:bastion",
        &format!(
            "ssh -W {}:22 bastion < /dev/null | head -1",
            world.hops.topo.target_ip
        ),
    );
    out.expect_code(0);
    assert!(
        out.stdout_text().starts_with("SSH-2.0-OpenSSH"),
        "{}",
        out.stdout_text()
    );
    // OpenSSH's own client, with our shim as its ProxyCommand.
    let out = world.through(
        "ssh:bastion",
        &format!(
            "/usr/bin/ssh -F {cfg} -o \"ProxyCommand=$MITOGEN_FAKESSH_SSH -W %h:%p bastion\" target 'ip -o addr show' < /dev/null",
            cfg = world.hops.cfg
        ),
    );
    out.assert_no_panic().expect_code(0);
    assert!(
        out.stdout_text().contains(&world.hops.topo.target_ip),
        "{}{}",
        out.stdout_text(),
        out.stderr_text()
    );
    // A refused stdio forward, as OpenSSH says it.
    let out = world.through("ssh:bastion", "ssh -W 127.0.0.1:1 bastion < /dev/null");
    out.expect_code(255);
    assert_eq!(
        out.stderr_text(),
        "channel 0: open failed: connect failed: Connection refused\nstdio forwarding failed\n"
    );
}

#[test]
#[ignore = "needs root, sshd, ssh-agent, the test accounts and network namespaces (run ./tests/run)"]
fn agent_forwarding_reaches_the_clients_agent_also_after_sudo() {
    let world = World::new();
    require_account("mfs-webapp");
    require_account("mfs-su");
    require("ssh-agent");
    let key = world.hops.dir.path().join("agent_key");
    let keygen = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "forwarded-test-key",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    // Written by mfs-webapp on the target (the same file system).
    let path_file = std::path::PathBuf::from(format!("/tmp/mfs-sock-path-{}", std::process::id()));
    let _ = std::fs::remove_file(&path_file);
    let out = world.run(&format!(
        "eval $(ssh-agent -s) > /dev/null && ssh-add -q {key} && \
         {bin} --ssh-config {cfg} --to ssh:bastion,ssh:target -- ssh -A target 'ssh-add -l' && \
         {bin} --ssh-config {cfg} --forward-agent-across-users --to ssh:bastion,ssh:target,sudo:mfs-webapp -- sh -c \"ssh -A target 'id -un; ssh-add -l; echo \\$SSH_AUTH_SOCK > {p}; sleep 3' & sleep 1.5; runuser -u mfs-su -- env SSH_AUTH_SOCK=\\$(cat {p}) ssh-add -l; echo other=\\$?; wait\" && \
         {bin} --ssh-config {cfg} --to ssh:bastion,ssh:target -- ssh target 'echo [$SSH_AUTH_SOCK]'; \
         ssh-agent -k > /dev/null",
        key = key.display(),
        bin = bin(),
        cfg = world.hops.cfg,
        p = path_file.display()
    ));
    out.assert_no_panic().expect_code(0);
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("forwarded-test-key"), "{text}");
    assert_eq!(lines[1], "mfs-webapp", "{text}");
    assert!(lines[2].contains("forwarded-test-key"), "{text}");
    // Another account cannot open the socket.
    assert!(lines.contains(&"other=2"), "{text}\n{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("Permission denied"),
        "{}",
        out.stderr_text()
    );
    // Without -A, no socket.
    assert_eq!(lines.last(), Some(&"[]"), "{text}");
}

#[test]
#[ignore = "needs root (run ./tests/run)"]
fn bad_forwards() {
    require_root();
    require_account("mfs-webapp");
    // A privileged port without the right to bind it.
    let mut cmd = Command::new("runuser");
    cmd.args([
        "-u",
        "mfs-webapp",
        "--",
        bin(),
        "--to",
        "local",
        "--",
        "sh",
        "-c",
    ])
    .arg("ssh -o ExitOnForwardFailure=yes -N -L 80:127.0.0.1:1 h; echo rc=$?");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "rc=255\n");
    assert!(
        out.stderr_text()
            .contains("bind [127.0.0.1]:80: Permission denied"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text()
            .contains("Could not request local forwarding."),
        "{}",
        out.stderr_text()
    );
    // A refused remote connect ends that connection only (said under -v).
    let port = free_port();
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "bash",
        "-c",
        &format!(
            "ssh -f -N -L {port}:127.0.0.1:1 h && (exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3); echo after; \
             ssh -f -N -L {p2}:127.0.0.1:1 h; echo two",
            p2 = port + 1
        ),
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "after\ntwo\n");
    assert!(
        !out.stderr_text().contains("refused"),
        "said without -v: {}",
        out.stderr_text()
    );
}
