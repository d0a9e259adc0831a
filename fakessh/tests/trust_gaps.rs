//! The smaller trust boundaries, each attacked with real processes:
//! another local account (`mfs-intruder`) knocking on a `-L` Unix socket
//! while it is bound; `~/.ssh/config`, an included file and a private key
//! that others could write or read, refused in OpenSSH's words (compared
//! with the real `ssh`); `ssh -A` through `sudo:mfs-webapp`; `ssh -R
//! '*:PORT'`; and the umask a command gets with and without an upload.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::{Sshd, free_port, require_sshd};
use common::*;

/// The other local account of these attacks (`.ci/accounts.sh`).
const INTRUDER: &str = "mfs-intruder";

/// Run as the intruder: connect to PATH again and again until STOP
/// exists; say how many connections were refused for permission and how
/// many got in.
const KNOCK: &str = "import errno,os,socket,sys,time
path,stop=sys.argv[1],sys.argv[2]
denied=inside=0
while not os.path.exists(stop):
    s=socket.socket(socket.AF_UNIX)
    try:
        s.connect(path); inside+=1
    except OSError as e:
        if e.errno==errno.EACCES: denied+=1
    s.close()
    time.sleep(0.0005)
print('denied=%d inside=%d' % (denied, inside))";

/// A TCP echo server on 127.0.0.1:PORT.
const ECHO: &str = "import socket,sys,threading
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('127.0.0.1',int(sys.argv[1]))); s.listen(8)
def echo(c):
    while True:
        d=c.recv(65536)
        if not d: break
        c.sendall(d)
while True:
    c,_=s.accept(); threading.Thread(target=echo,args=(c,),daemon=True).start()";

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a background process when the test ends, however it ends.
struct Background(Option<Child>);

impl Background {
    fn new(child: Child) -> Background {
        Background(Some(child))
    }

    /// The process, no longer killed at the end.
    fn take(mut self) -> Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
#[ignore = "needs root, strace and the mfs-intruder account (run ./tests/run)"]
fn another_account_never_gets_into_a_unix_forward_listener() {
    require_account(INTRUDER);
    require("strace");
    require("python3");
    // A directory like /tmp: everybody may look in it.
    let dir = tempfile::Builder::new()
        .prefix("mfs-trust.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let sock = dir.path().join("fwd.sock");
    let stop = dir.path().join("stop");
    let pidfile = dir.path().join("ssh.pid");
    let _stop_at_the_end = StopFile(stop.clone());
    let port = free_port();
    let _echo = Background::new(
        Command::new("python3")
            .args(["-c", ECHO, &port.to_string()])
            .spawn()
            .unwrap(),
    );
    let intruder = Command::new("runuser")
        .args(["-u", INTRUDER, "--", "python3", "-c", KNOCK])
        .arg(&sock)
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let intruder = Background::new(intruder);
    // umask 000, as a careless shell has it: a socket bound and chmod'ed
    // afterwards would be 0777 until the chmod, which strace holds back
    // for 1.5 s. The forward's socket must admit nobody else all along.
    let script = format!(
        "umask 000; strace -f -qq -o /dev/null -e trace=chmod,fchmodat \
         -e inject=chmod,fchmodat:delay_enter=1500000 \
         sh -c 'echo $$ > {pid}; exec ssh -N -L {sock}:127.0.0.1:{port} h' < /dev/null & \
         while [ ! -e {stop} ]; do sleep 0.05; done; kill $(cat {pid}); wait",
        pid = pidfile.display(),
        sock = sock.display(),
        stop = stop.display(),
    );
    let run = Background::new(
        Command::new(bin())
            .args(["--to", "local", "--", "sh", "-c", &script])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The owner gets through, to the echo server and back.
    wait_for("the forward's socket", || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    let mode = std::fs::symlink_metadata(&sock)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"through the forward").unwrap();
        let mut back = [0u8; 19];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"through the forward");
    }
    // Let the intruder knock on the finished socket a while too.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop, "").unwrap();
    let said = intruder.take().wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    let mut run = run.take();
    let start = Instant::now();
    while run.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let counts: Vec<u64> = said
        .trim()
        .split(' ')
        .filter_map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()))
        .collect();
    assert_eq!(counts.len(), 2, "the intruder said {said:?}");
    assert_eq!(counts[1], 0, "another account got in: {said}");
    assert!(counts[0] > 0, "the intruder never met the socket: {said}");
    assert_eq!(mode, 0o600, "the socket was {mode:o} when it appeared");
}

/// Creates the file that ends the intruder's and the run's loops when the
/// test ends, however it ends.
struct StopFile(PathBuf);

impl Drop for StopFile {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// The intruder's home, where it plays the operator whose files are lax.
fn intruder_home() -> PathBuf {
    PathBuf::from(format!("/home/{INTRUDER}"))
}

/// `program ARGS...` as the intruder, with a login's environment.
fn as_intruder(program: &str, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", INTRUDER, "--", "env", "-i"])
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .arg(format!("HOME={}", intruder_home().display()))
        .arg(format!("USER={INTRUDER}"))
        .arg(program)
        .args(args);
    run_with(cmd, b"", Duration::from_secs(60))
}

/// `path` with `text`, owned by the intruder, with `mode`.
fn intruder_file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    let uid = uid_of(INTRUDER);
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Removes the intruder's ssh config when the test ends.
struct SshDir(PathBuf);

impl Drop for SshDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first line of `text` holding `needle`, without OpenSSH's `\r`.
fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.contains(needle))
}

#[test]
#[ignore = "needs root and the mfs-intruder account (run ./tests/run)"]
fn a_writable_ssh_config_or_include_is_refused_as_openssh_refuses_it() {
    require_account(INTRUDER);
    require("ssh");
    let ssh_dir = intruder_home().join(".ssh");
    let _cleanup = SshDir(ssh_dir.clone());
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let uid = uid_of(INTRUDER);
    std::os::unix::fs::chown(&ssh_dir, Some(uid), None).unwrap();
    let config = ssh_dir.join("config");
    let extra = ssh_dir.join("extra.conf");
    let ours = || as_intruder(bin(), &["--to", "local", "--", "ssh", "h", "echo ran"]);
    let openssh = || as_intruder("ssh", &["-G", "h"]);
    for (config_mode, extra_mode, bad) in [(0o664, 0o644, &config), (0o600, 0o620, &extra)] {
        intruder_file(&config, "Include extra.conf\n", config_mode);
        intruder_file(&extra, "Host h\n  User nobody-here\n", extra_mode);
        let said = format!("Bad owner or permissions on {}", bad.display());
        let real = openssh();
        real.expect_code(255);
        assert_eq!(
            line_with(&real.stderr_text(), "Bad owner"),
            Some(said.as_str()),
            "OpenSSH said otherwise: {}",
            real.stderr_text()
        );
        let run = ours();
        run.assert_no_panic().expect_code(255);
        assert!(
            line_with(&run.stderr_text(), &said).is_some(),
            "{}",
            run.stderr_text()
        );
        assert!(!run.stdout_text().contains("ran"), "the command ran");
    }
    // Writable by its owner alone: used.
    intruder_file(&config, "Include extra.conf\n", 0o644);
    intruder_file(&extra, "Host h\n  User nobody-here\n", 0o600);
    openssh().expect_code(0);
    let run = ours();
    run.expect_code(0);
    assert_eq!(run.stdout_text(), "ran\n");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_private_key_others_can_read_is_refused_as_openssh_refuses_it() {
    require_sshd();
    require("ssh");
    let sshd = Sshd::start();
    let key = sshd.path("user_key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut real = Command::new("ssh");
    real.args([
        "-F",
        &sshd.ssh_config(),
        "-o",
        "BatchMode=yes",
        "target",
        "echo ran",
    ])
    .env_remove("SSH_AUTH_SOCK");
    let real = run_with(real, b"", Duration::from_secs(60));
    real.expect_code(255);
    assert!(!real.stdout_text().contains("ran"));
    // OpenSSH's block, from its first line to "Load key ...".
    let real_err = real.stderr_text();
    let real_lines: Vec<&str> = real_err.lines().map(|l| l.trim_end_matches('\r')).collect();
    let first = real_lines
        .iter()
        .position(|l| l.starts_with("@@@@"))
        .expect("OpenSSH printed no warning");
    let last = real_lines
        .iter()
        .position(|l| l.starts_with("Load key"))
        .expect("OpenSSH printed no Load key line");
    let block = &real_lines[first..=last];
    assert_eq!(block.len(), 7, "{real_err}");
    assert_eq!(
        block[3],
        format!("Permissions 0644 for '{}' are too open.", key.display())
    );
    assert_eq!(
        block[6],
        format!("Load key \"{}\": bad permissions", key.display())
    );
    let run = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "target",
        "echo ran",
    ]);
    run.assert_no_panic().expect_code(255);
    assert!(!run.stdout_text().contains("ran"));
    let ours = run.stderr_text();
    let our_lines: Vec<&str> = ours.lines().collect();
    assert!(
        our_lines.windows(block.len()).any(|w| w == block),
        "OpenSSH's block is not ours:\n--- OpenSSH ---\n{real_err}\n--- ours ---\n{ours}"
    );
    assert_eq!(sshd.accepted(), 0, "a login with the key happened");
    // Readable by its owner alone: the same key logs in.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "target",
        "echo ran",
    ]);
    run.expect_code(0);
    assert_eq!(run.stdout_text(), "ran\n");
}

#[test]
#[ignore = "needs root, sshd, ssh-agent and the test accounts (run ./tests/run)"]
fn the_agent_is_not_forwarded_to_another_account_without_the_flag() {
    require_sshd();
    require_account("mfs-webapp");
    require("ssh-agent");
    let sshd = Sshd::start();
    let key = sshd.path("agent_key");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "operator-key", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let script = format!(
        "eval $(ssh-agent -s) > /dev/null && ssh-add -q {key} && \
         {bin} --ssh-config {cfg} --to ssh:target,sudo:mfs-webapp -- ssh -A target 'id -un; echo \"[$SSH_AUTH_SOCK]\"'; \
         {bin} --ssh-config {cfg} --forward-agent-across-users --to ssh:target,sudo:mfs-webapp -- ssh -A target 'id -un; ssh-add -l'; \
         {bin} --ssh-config {cfg} --to ssh:target -- ssh -A target 'id -un; ssh-add -l'; \
         ssh-agent -k > /dev/null",
        key = key.display(),
        bin = bin(),
        cfg = sshd.ssh_config(),
    );
    let mut cmd = Command::new("setsid");
    cmd.args(["bash", "-c", &script])
        .env_remove("SSH_AUTH_SOCK");
    let out = run_with(cmd, b"", Duration::from_secs(180));
    out.assert_no_panic().expect_code(0);
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}\n{}", out.stderr_text());
    // Without the flag: the command ran, as mfs-webapp, with no agent.
    assert_eq!(lines[..2], ["mfs-webapp", "[]"], "{text}");
    let warning = "not forwarding the agent to mfs-webapp on ssh:target,sudo:mfs-webapp";
    assert_eq!(
        out.stderr_text().matches(warning).count(),
        1,
        "{}",
        out.stderr_text()
    );
    // With it, and where the user does not change: the operator's key.
    assert_eq!(lines[2], "mfs-webapp");
    assert!(lines[3].contains("operator-key"), "{text}");
    assert_eq!(lines[4], "root");
    assert!(lines[5].contains("operator-key"), "{text}");
}

/// The local addresses listening on `port` (`ss -ltn`).
fn listening_on(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("( sport = :{port} )")])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

#[test]
#[ignore = "needs root (run ./tests/run)"]
fn a_remote_forward_to_every_interface_listens_on_loopback_unless_allowed() {
    require_root();
    require("ss");
    for (flag, everywhere) in [(None, false), (Some("--remote-gateway-ports"), true)] {
        let port = free_port();
        let script = format!(
            "ssh -f -N -R '*:{port}:127.0.0.1:1' h && ss -ltnH '( sport = :{port} )' | awk '{{print $4}}'"
        );
        let mut args = vec!["--to", "local"];
        args.extend(flag);
        args.extend(["--", "sh", "-c", &script]);
        let out = fakessh(&args);
        out.assert_no_panic().expect_code(0);
        let text = out.stdout_text();
        let addresses: Vec<&str> = text.lines().collect();
        assert!(
            !addresses.is_empty(),
            "nothing listened: {}",
            out.stderr_text()
        );
        let loopback = [format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
        let wildcard = [
            format!("0.0.0.0:{port}"),
            format!("[::]:{port}"),
            format!("*:{port}"),
        ];
        for address in &addresses {
            let allowed = if everywhere {
                &wildcard[..]
            } else {
                &loopback[..]
            };
            assert!(
                allowed.iter().any(|a| a == address),
                "{flag:?}: listening on {address} ({addresses:?})"
            );
        }
        // The run is over: so is the listener.
        assert_eq!(listening_on(port), Vec::<String>::new());
    }
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn commands_get_the_login_umask_whether_the_agent_was_uploaded_or_cached() {
    require_sshd();
    require("ssh");
    let sshd = Sshd::start();
    let umask = || {
        fakessh(&[
            "-v",
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
            "--",
            "ssh",
            "target",
            "umask",
        ])
    };
    let uploading = umask();
    uploading.expect_error(0, "uploading agent");
    let cached = umask();
    cached.expect_error(0, "agent found in the remote cache");
    // What sshd itself gives a command, through OpenSSH's own client.
    let mut real = Command::new("ssh");
    real.args([
        "-F",
        &sshd.ssh_config(),
        "-o",
        "BatchMode=yes",
        "target",
        "umask",
    ])
    .env_remove("SSH_AUTH_SOCK");
    let real = run_with(real, b"", Duration::from_secs(60));
    real.expect_code(0);
    assert_eq!(uploading.stdout_text(), real.stdout_text());
    assert_eq!(cached.stdout_text(), real.stdout_text());
    assert_ne!(real.stdout_text(), "0077\n", "sshd's own umask is 077 here");
}
