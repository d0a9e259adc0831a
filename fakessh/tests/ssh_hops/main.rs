//! `ssh:` hops against a real OpenSSH sshd on loopback: rsync both ways,
//! connection reuse, on-demand mode, the agent cache, host keys,
//! authentication errors, cleanup, and a transfer past russh's rekey point;
//! a file a topic.
#![cfg(feature = "host")]

#[path = "../common/mod.rs"]
mod common;

mod authentication;
mod destinations;
mod host_keys;
mod sessions;

use std::process::Command;
use std::time::{Duration, Instant};

use common::sshd::{Sshd, require_sshd};
use common::*;

fn to_target(sshd: &Sshd, script: &str) -> Outcome {
    fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "sh",
        "-c",
        script,
    ])
}

/// Run ssh-keygen; it must succeed.
fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mitogen-fakessh -v --to ssh:target -- ssh h COMMAND`.
fn verbose_ssh_via_target(sshd: &Sshd, command: &str) -> Outcome {
    fakessh(&[
        "-v",
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "h",
        command,
    ])
}
