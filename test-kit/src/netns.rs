//! Two network namespaces for the multi-hop tests: host <-> bastion and
//! bastion <-> target on two /30s from the documentation ranges that this
//! machine does not use itself, and an `unreachable` route on the host so
//! its direct attempt at the target fails locally, without a packet
//! leaving the machine.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// One topology per test process at a time: names and prefixes are per
/// process, and cargo runs a binary's tests in parallel threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Topology {
    pub bastion_ns: String,
    pub target_ns: String,
    pub host_veth: String,
    /// Host side, bastion side of the first link; bastion side, target side
    /// of the second; and the second link's /30.
    pub host_ip: String,
    pub bastion_ip: String,
    pub bastion_inner_ip: String,
    pub target_ip: String,
    pub inner_net: String,
    /// Released after `Drop::drop` has removed the namespaces.
    _turn: MutexGuard<'static, ()>,
}

/// Two /24 prefixes that appear nowhere in this machine's addresses or routes.
fn unused_prefixes() -> (String, String) {
    let seen = |args: &[&str]| {
        String::from_utf8_lossy(&Command::new("ip").args(args).output().unwrap().stdout)
            .into_owned()
    };
    let in_use = format!(
        "{}{}{}",
        seen(&["-o", "addr"]),
        seen(&["route"]),
        seen(&["route", "show", "table", "all"])
    );
    let free: Vec<&str> = [
        "203.0.113",
        "198.51.100",
        "192.0.2",
        "100.127.253",
        "100.127.254",
    ]
    .into_iter()
    .filter(|p| !in_use.contains(&format!("{p}.")))
    .collect();
    assert!(
        free.len() >= 2,
        "no unused test prefixes on this machine:\n{in_use}"
    );
    (free[0].to_string(), free[1].to_string())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Topology {
    pub fn create() -> Topology {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let tag = std::process::id() % 100000;
        let (outer, inner) = unused_prefixes();
        let t = Topology {
            bastion_ns: format!("mfs-bastion-{tag}"),
            target_ns: format!("mfs-target-{tag}"),
            host_veth: format!("mfh{tag}"),
            host_ip: format!("{outer}.1"),
            bastion_ip: format!("{outer}.2"),
            bastion_inner_ip: format!("{inner}.1"),
            target_ip: format!("{inner}.2"),
            inner_net: format!("{inner}.0/30"),
            _turn: turn,
        };
        t.remove_links();
        let (hb, bh, bt, tb) = (
            t.host_veth.clone(),
            format!("mfb{tag}"),
            format!("mfc{tag}"),
            format!("mft{tag}"),
        );
        ip(&["netns", "add", &t.bastion_ns]);
        ip(&["netns", "add", &t.target_ns]);
        ip(&["link", "add", &hb, "type", "veth", "peer", "name", &bh]);
        ip(&["link", "set", &bh, "netns", &t.bastion_ns]);
        ip(&["addr", "add", &format!("{}/30", t.host_ip), "dev", &hb]);
        ip(&["link", "set", &hb, "up"]);
        ip(&[
            "-n",
            &t.bastion_ns,
            "addr",
            "add",
            &format!("{}/30", t.bastion_ip),
            "dev",
            &bh,
        ]);
        ip(&["-n", &t.bastion_ns, "link", "set", &bh, "up"]);
        ip(&["-n", &t.bastion_ns, "link", "set", "lo", "up"]);
        ip(&["link", "add", &bt, "type", "veth", "peer", "name", &tb]);
        ip(&["link", "set", &bt, "netns", &t.bastion_ns]);
        ip(&["link", "set", &tb, "netns", &t.target_ns]);
        ip(&[
            "-n",
            &t.bastion_ns,
            "addr",
            "add",
            &format!("{}/30", t.bastion_inner_ip),
            "dev",
            &bt,
        ]);
        ip(&["-n", &t.bastion_ns, "link", "set", &bt, "up"]);
        ip(&[
            "-n",
            &t.target_ns,
            "addr",
            "add",
            &format!("{}/30", t.target_ip),
            "dev",
            &tb,
        ]);
        ip(&["-n", &t.target_ns, "link", "set", &tb, "up"]);
        ip(&["-n", &t.target_ns, "link", "set", "lo", "up"]);
        ip(&["route", "add", "unreachable", &t.inner_net]);
        t
    }

    fn remove_links(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.bastion_ns])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.target_ns])
            .output();
    }

    fn remove(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).output();
        };
        if !self.inner_net.is_empty() {
            quiet(&["route", "del", "unreachable", &self.inner_net]);
        }
        quiet(&["link", "del", &self.host_veth]);
        quiet(&["netns", "del", &self.bastion_ns]);
        quiet(&["netns", "del", &self.target_ns]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Run `args` inside network namespace `ns`, in the background.
pub fn spawn_in(ns: &str, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ip netns exec")
}

/// A bastion and a target sshd in a fresh topology, and an ssh config that
/// names them `bastion` and `target` (root, with the bastion's test key).
pub struct TwoHops {
    pub bastion: crate::sshd::Sshd,
    pub target: crate::sshd::Sshd,
    pub dir: tempfile::TempDir,
    /// The ssh config's path.
    pub cfg: String,
    /// Dropped last: the namespaces go after their sshds.
    pub topo: Topology,
}

impl TwoHops {
    pub fn start() -> TwoHops {
        use crate::sshd::Sshd;
        let topo = Topology::create();
        let bastion = Sshd::start_in(Some(&topo.bastion_ns), &topo.bastion_ip, 22, None);
        let target = Sshd::start_in(Some(&topo.target_ns), &topo.target_ip, 22, Some(&bastion));
        let dir = tempfile::tempdir().unwrap();
        let known = dir.path().join("known_hosts");
        std::fs::write(
            &known,
            format!("{}{}", bastion.host_key_line(), target.host_key_line()),
        )
        .unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host bastion\n  HostName {}\nHost target\n  HostName {}\n\
                 Host *\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n",
                topo.bastion_ip,
                topo.target_ip,
                bastion.path("user_key").display(),
                known.display()
            ),
        )
        .unwrap();
        TwoHops {
            bastion,
            target,
            dir,
            cfg: config.display().to_string(),
            topo,
        }
    }
}
