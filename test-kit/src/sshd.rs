//! A real OpenSSH sshd on a loopback port (or inside a test network
//! namespace), with generated host and user keys, its own agent cache
//! directory and an ssh_config that names it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::needs::{require, require_root};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub port: u16,
    child: Child,
}

/// sshd tests need sshd and ssh-keygen, and root (sshd switches users).
pub fn require_sshd() {
    require("ssh-keygen");
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "/usr/sbin/sshd is not installed: run ./tests/run as root, which installs openssh-server"
    );
    require_root();
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// sshd on 127.0.0.1 with fresh keys.
    pub fn start() -> Sshd {
        Sshd::start_in(None, "127.0.0.1", free_port(), None)
    }

    /// sshd on 127.0.0.1 with fresh keys and extra sshd options (`-o`).
    pub fn start_with(options: &[&str]) -> Sshd {
        Sshd::launch(&[], "127.0.0.1", free_port(), None, options)
    }

    /// sshd on 127.0.0.1 run by `wrapper` (a command that ends by exec'ing
    /// its arguments, e.g. `unshare --mount sh -c '...; exec "$@"' sh`),
    /// with extra sshd options.
    pub fn start_wrapped(wrapper: &[&str], options: &[&str]) -> Sshd {
        Sshd::launch(wrapper, "127.0.0.1", free_port(), None, options)
    }

    /// sshd on 127.0.0.1 in a mount namespace of its own (private
    /// propagation), where `script` (sh as root, under `set -e`) first
    /// mounted what the test needs.
    pub fn start_with_mounts(script: &str) -> Sshd {
        let wrapped = format!("set -e; {script}; exec \"$@\"");
        let wrapper = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &wrapped,
            "sh",
        ];
        Sshd::start_wrapped(&wrapper, &[])
    }

    /// Another sshd on 127.0.0.1 with `other`'s keys and extra options.
    pub fn start_sharing(other: &Sshd, options: &[&str]) -> Sshd {
        Sshd::launch(&[], "127.0.0.1", free_port(), Some(other), options)
    }

    /// sshd listening on `addr:port`, inside network namespace `netns` if
    /// given; `keys_from` shares another fixture's user key and host key.
    pub fn start_in(netns: Option<&str>, addr: &str, port: u16, keys_from: Option<&Sshd>) -> Sshd {
        match netns {
            Some(ns) => Sshd::launch(&["ip", "netns", "exec", ns], addr, port, keys_from, &[]),
            None => Sshd::launch(&[], addr, port, keys_from, &[]),
        }
    }

    fn launch(
        wrapper: &[&str],
        addr: &str,
        port: u16,
        keys_from: Option<&Sshd>,
        options: &[&str],
    ) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("mfs-sshd.")
            .tempdir()
            .unwrap();
        let d = dir.path();
        match keys_from {
            Some(other) => {
                for f in ["host_key", "host_key.pub", "user_key", "user_key.pub"] {
                    std::fs::copy(other.dir.path().join(f), d.join(f)).unwrap();
                }
                use std::os::unix::fs::PermissionsExt;
                for f in ["host_key", "user_key"] {
                    std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                }
            }
            None => {
                keygen(&d.join("host_key"));
                keygen(&d.join("user_key"));
            }
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all(d.join("cache")).unwrap();
        // Non-root test users log in too: sshd reads authorized_keys as them.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(
                d.join("authorized_keys"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }
        let config = format!(
            "Port {port}\nListenAddress {addr}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\nPidFile {d}/sshd.pid\nLogLevel VERBOSE\n\
             UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n\
             Match User root\n  SetEnv XDG_CACHE_HOME={d}/cache\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("/usr/sbin/sshd");
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        cmd.arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"));
        for option in options {
            cmd.arg("-o").arg(option);
        }
        let child = cmd.stdin(Stdio::null()).spawn().expect("start sshd");
        let mut sshd = Sshd {
            dir,
            addr: addr.to_string(),
            port,
            child,
        };
        sshd.wait_listening(wrapper);
        sshd.write_client_files("target");
        sshd
    }

    fn wait_listening(&mut self, wrapper: &[&str]) {
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("Server listening") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd (run by {wrapper:?}) exited with {status}:\n{log}");
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("sshd did not start (run by {wrapper:?}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The listening sshd's pid: every session's processes descend from it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The processes below the listening sshd (sessions, their agents and
    /// commands), as `pid command line`.
    pub fn descendants(&self) -> Vec<String> {
        let mut parents = std::collections::HashMap::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces and parens.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
            {
                parents.insert(pid, ppid);
            }
        }
        let mut found = Vec::new();
        let mut frontier = vec![self.pid()];
        while let Some(parent) = frontier.pop() {
            for (pid, ppid) in &parents {
                if *ppid == parent {
                    frontier.push(*pid);
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    found.push(format!("{pid} {}", cmdline.trim()));
                }
            }
        }
        found
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log_path(&self) -> PathBuf {
        self.path("sshd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many connections sshd accepted.
    pub fn accepted(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// Our host key as a known_hosts line for our address and port.
    pub fn host_key_line(&self) -> String {
        self.known_hosts_line(self.port)
    }

    /// Our host key as a known_hosts line for our address and `port` (a
    /// proxy's, say).
    pub fn known_hosts_line(&self, port: u16) -> String {
        let pubkey = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut words = pubkey.split_whitespace();
        let host = if port == 22 {
            self.addr.clone()
        } else {
            format!("[{}]:{}", self.addr, port)
        };
        format!(
            "{host} {} {}\n",
            words.next().unwrap(),
            words.next().unwrap()
        )
    }

    /// known_hosts with our key, and an ssh_config naming us `alias`.
    pub fn write_client_files(&self, alias: &str) {
        std::fs::write(self.path("known_hosts"), self.host_key_line()).unwrap();
        std::fs::write(self.path("ssh_config"), self.config_block(alias, "")).unwrap();
    }

    /// Our ssh_config, naming us `alias` and logging in as `user`.
    pub fn write_config_for(&self, alias: &str, user: &str) {
        std::fs::write(
            self.path("ssh_config"),
            self.config_block_for(alias, user, ""),
        )
        .unwrap();
    }

    /// An ssh_config `Host` block for this server; `extra` adds lines.
    pub fn config_block(&self, alias: &str, extra: &str) -> String {
        self.config_block_for(alias, "root", extra)
    }

    /// The same, logging in as `user`.
    pub fn config_block_for(&self, alias: &str, user: &str, extra: &str) -> String {
        format!(
            "Host {alias}\n  HostName {}\n  Port {}\n  User {user}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n{extra}",
            self.addr,
            self.port,
            self.path("user_key").display(),
            self.path("known_hosts").display()
        )
    }

    /// The same with `keys` as the only identity files (IdentitiesOnly).
    pub fn config_block_with_keys(
        &self,
        alias: &str,
        user: &str,
        keys: &[&Path],
        extra: &str,
    ) -> String {
        let mut identities = String::new();
        for key in keys {
            identities.push_str(&format!("  IdentityFile {}\n", key.display()));
        }
        identities.push_str("  IdentitiesOnly yes\n");
        self.config_block_for(alias, user, extra)
            .lines()
            .map(|l| match l.trim_start().starts_with("IdentityFile ") {
                true => identities.clone(),
                false => format!("{l}\n"),
            })
            .collect()
    }

    pub fn ssh_config(&self) -> String {
        self.path("ssh_config").display().to_string()
    }

    /// The agent cache on the "remote" side.
    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache/mitogen-fakessh")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- sshd log ({}) ---\n{}",
                self.log_path().display(),
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Connection children of sshd exit with their clients; make sure.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .status();
    }
}
