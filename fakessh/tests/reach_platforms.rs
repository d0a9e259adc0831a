//! The agent reaches hosts unlike this one, through a real sshd whose
//! account is chrooted into a directory holding only a static busybox:
//! an x86_64 host with no C library at all, and an aarch64 one run by
//! qemu-user through binfmt_misc. Also: an x86_64 bastion before the
//! aarch64 host, a privilege hop after it, and a platform nobody built an
//! agent for.
#![cfg(feature = "host")]

mod common;

use std::path::Path;

use common::chroot::{
    APPLETS, ARM64_BUSYBOX, Account, Chroot, chrooted_sshd, require_qemu_aarch64,
};
use common::sshd::{Sshd, require_sshd};
use common::*;

/// `mitogen-fakessh -v --ssh-config CFG --to CHAIN -- sh -c SCRIPT`.
fn via(cfg: &str, chain: &str, script: &str) -> Outcome {
    fakessh(&[
        "-v",
        "--ssh-config",
        cfg,
        "--to",
        chain,
        "--",
        "sh",
        "-c",
        script,
    ])
}

/// 64 MiB through `ssh h cat` and back, byte for byte.
fn round_trip(cfg: &str, chain: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (sent, back) = (tmp.path().join("sent"), tmp.path().join("back"));
    write_random_file(&sent, 64 << 20, 15);
    via(
        cfg,
        chain,
        &format!("ssh h cat < '{}' > '{}'", sent.display(), back.display()),
    )
    .assert_no_panic()
    .expect_code(0);
    assert!(
        same_file(&sent, &back),
        "64 MiB through {chain} came back different"
    );
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// The x86_64 busybox chroot with `mfs-chroot` in it.
fn busybox_host(applets: &[&str]) -> (Chroot, Sshd) {
    require_sshd();
    require_account("mfs-chroot");
    static_agent("x86_64");
    let chroot = Chroot::busybox(
        Path::new("/bin/busybox"),
        applets,
        &[Account {
            name: "mfs-chroot",
            uid: uid_of("mfs-chroot"),
            home: "/home/mfs-chroot",
            shell: "/bin/sh",
        }],
    );
    let sshd = chrooted_sshd(&chroot, "mfs-chroot");
    (chroot, sshd)
}

#[test]
#[ignore = "needs root, sshd, busybox-static and the mfs-chroot account (run ./tests/run)"]
fn a_host_with_no_libc_runs_commands_and_round_trips() {
    let (chroot, sshd) = busybox_host(APPLETS);
    let cfg = sshd.ssh_config();
    assert!(
        !chroot.path("lib").exists() && !chroot.path("usr").exists(),
        "the chroot holds a C library"
    );
    let first = via(&cfg, "ssh:h", "ssh h echo hi");
    first.assert_no_panic().expect_code(0);
    assert_eq!(first.stdout_text(), "hi\n");
    // No gzip there: the agent goes raw, all of it.
    let log = first.stderr_text();
    let upload = log
        .lines()
        .find(|l| l.contains("uploading agent for Linux x86_64 ("))
        .unwrap_or_else(|| panic!("no upload in:\n{log}"));
    assert!(!upload.contains("gzip'd"), "{upload}");
    first.expect_stderr("agent stored in /home/mfs-chroot/.cache/mitogen-fakessh");
    assert!(
        chroot
            .path("home/mfs-chroot/.cache/mitogen-fakessh")
            .is_dir()
    );
    round_trip(&cfg, "ssh:h");
}

#[test]
#[ignore = "needs root, sshd and the mfs-dash account (run ./tests/run)"]
fn an_unknown_platform_and_a_failing_uname_are_named() {
    require_sshd();
    // Not root: the fixture's `Match User root` sets root's environment.
    require_account("mfs-dash");
    // sshd puts a directory of ours first on PATH, where `uname` lies.
    let fake = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let uname = fake.path().join("uname");
    let lie = |body: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&uname, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&uname, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let sshd = Sshd::start_with(&[&format!(
        "SetEnv=PATH={}:/usr/bin:/bin",
        fake.path().display()
    )]);
    sshd.write_config_for("target", "mfs-dash");
    let cfg = sshd.ssh_config();
    lie("echo Linux sparc64");
    via(&cfg, "ssh:target", "ssh h true")
        .assert_no_panic()
        .expect_error(
            255,
            "ssh:target: no agent image for the remote platform \"Linux sparc64\" (uname -sm): build one with ./build-agents sparc64",
        );
    lie("echo 'uname: cannot tell' >&2; exit 3");
    via(&cfg, "ssh:target", "ssh h true")
        .assert_no_panic()
        .expect_error(255, "ssh:target: uname -sm failed: uname: cannot tell");
    lie("exec /bin/uname \"$@\"");
    let back = via(&cfg, "ssh:target", "ssh h echo back");
    back.expect_code(0);
    assert_eq!(back.stdout_text(), "back\n");
}

/// The aarch64 busybox chroot: root logs in (its login shell is a script
/// that runs busybox's sh), and `mfs-arm` exists only inside.
fn aarch64_host() -> (Chroot, Sshd) {
    require_sshd();
    require_qemu_aarch64();
    static_agent("aarch64");
    let root_shell = String::from_utf8(
        std::process::Command::new("getent")
            .args(["passwd", "root"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .rsplit(':')
    .next()
    .unwrap()
    .to_string();
    let mut applets = APPLETS.to_vec();
    applets.extend(["gzip", "su"]);
    let mut chroot = Chroot::busybox(
        Path::new(ARM64_BUSYBOX),
        &applets,
        &[
            Account {
                name: "root",
                uid: 0,
                home: "/root",
                shell: &root_shell,
            },
            Account {
                name: "mfs-arm",
                uid: 4242,
                home: "/home/mfs-arm",
                shell: "/bin/sh",
            },
        ],
    );
    // sshd runs root's login shell from this machine's passwd.
    std::fs::create_dir_all(
        chroot.path(Path::new(&root_shell).parent().unwrap().to_str().unwrap()),
    )
    .unwrap();
    chroot.script(&root_shell, "exec /bin/sh \"$@\"");
    chroot.mount_proc_and_pts();
    let sshd = chrooted_sshd(&chroot, "root");
    (chroot, sshd)
}

#[test]
#[ignore = "needs root, sshd, qemu-user-static with binfmt_misc and busybox-static:arm64 (run ./tests/run)"]
fn an_aarch64_host_gets_the_aarch64_agent() {
    let (_chroot, sshd) = aarch64_host();
    let cfg = sshd.ssh_config();
    // A host without the aarch64 agent (no agents directory beside it)
    // says which one to build.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("bin/mitogen-fakessh");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(bin(), &copy).unwrap();
    let out = run_with(
        {
            let mut c = std::process::Command::new(&copy);
            c.args([
                "--ssh-config",
                &cfg,
                "--to",
                "ssh:h",
                "--",
                "ssh",
                "h",
                "true",
            ]);
            c
        },
        b"",
        std::time::Duration::from_secs(120),
    );
    out.assert_no_panic().expect_error(
        255,
        "ssh:h: no agent image for the remote platform \"Linux aarch64\" (uname -sm): build one with ./build-agents aarch64",
    );
    let first = via(&cfg, "ssh:h", "ssh h uname -m");
    first.assert_no_panic().expect_code(0);
    assert_eq!(first.stdout_text(), "aarch64\n");
    let log = first.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("uploading agent for Linux aarch64 (") && l.contains("gzip'd")),
        "no gzip'd aarch64 upload in:\n{log}"
    );
    round_trip(&cfg, "ssh:h");
}

#[test]
#[ignore = "needs root, sshd, qemu-user-static with binfmt_misc and busybox-static:arm64 (run ./tests/run)"]
fn an_x86_64_bastion_then_an_aarch64_host_then_su() {
    let (_chroot, arm) = aarch64_host();
    let bastion = Sshd::start();
    static_agent("x86_64");
    let cfg = bastion.path("chain_config");
    std::fs::write(
        &cfg,
        format!(
            "{}\n{}",
            bastion.config_block("bastion", ""),
            arm.config_block_for("arm", "root", "")
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let out = via(&cfg, "ssh:bastion,ssh:arm", "ssh h uname -m");
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "aarch64\n");
    let log = out.stderr_text();
    for (hop, platform) in [
        ("ssh:bastion", "Linux x86_64"),
        ("ssh:bastion,ssh:arm", "Linux aarch64"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("{hop}: uploading agent for {platform} ("))),
            "{hop} did not get the {platform} agent:\n{log}"
        );
    }
    // A privilege hop after the aarch64 one: its agent hands on itself.
    let su = via(
        &cfg,
        "ssh:bastion,ssh:arm,su:mfs-arm",
        "ssh h 'id -un; uname -m'",
    );
    su.assert_no_panic().expect_code(0);
    assert_eq!(su.stdout_text(), "mfs-arm\naarch64\n");
}

#[test]
#[ignore = "needs root, sshd and setarch (run ./tests/run)"]
fn an_i686_host_gets_the_i686_agent() {
    require_sshd();
    require("setarch");
    static_agent("i686");
    // sshd and its sessions under the 32-bit personality: uname says i686,
    // as on a 32-bit x86 system.
    let sshd = Sshd::start_wrapped(&["setarch", "i686"], &[]);
    let cfg = sshd.ssh_config();
    let out = via(&cfg, "ssh:target", "ssh h uname -sm");
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "Linux i686\n");
    out.expect_stderr("uploading agent for Linux i686 (");
    round_trip(&cfg, "ssh:target");
}
