//! `./install` puts the executable, every agent built, the man page and
//! the shell completions under PREFIX (behind DESTDIR, as packagers use
//! it), from a copy of the build outputs that is deleted afterwards. The
//! installed copy then works without any build tree: it lists the
//! installed agents, all of its own build, and uploads them to a host with
//! no C library and to an aarch64 host run by qemu-user. An agent built
//! from other sources stops the install before anything is written.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::chroot::{
    APPLETS, ARM64_BUSYBOX, Account, Chroot, chrooted_sshd, require_qemu_aarch64,
};
use common::sshd::{Sshd, require_sshd};
use common::*;

/// Where the installed copy believes it lives (it runs from DESTDIR).
const PREFIX: &str = "/opt/mitogen-fakessh";

/// A build tree of our own: this build's executable as
/// `release/mitogen-fakessh`, and every agent of `target/agents`.
fn copy_of_the_build() -> tempfile::TempDir {
    let build = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(build.path().join("release")).unwrap();
    // Copied by another process: a file this one had open for writing
    // could be inherited by a child another test thread forks meanwhile,
    // and executing it would then fail with ETXTBSY.
    let copied = Command::new("cp")
        .arg(bin())
        .arg(build.path().join("release/mitogen-fakessh"))
        .status()
        .unwrap();
    assert!(copied.success(), "cp {}: {copied}", bin());
    let agents = workspace().join("target/agents");
    for entry in std::fs::read_dir(&agents).unwrap() {
        let from = entry.unwrap().path();
        if !from.join("mitogen-fakessh").is_file() {
            continue;
        }
        let to = build.path().join("agents").join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for name in ["mitogen-fakessh", "mitogen-fakessh.gz"] {
            if from.join(name).is_file() {
                std::fs::copy(from.join(name), to.join(name)).unwrap();
            }
        }
    }
    build
}

/// `./install DESTDIR=DEST PREFIX=/opt/mitogen-fakessh` from `build`.
fn run_install(build: &Path, dest: &Path) -> Outcome {
    let mut install = Command::new(workspace().join("install"));
    install
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={PREFIX}"))
        .env("CARGO_TARGET_DIR", build)
        .env_remove("MITOGEN_FAKESSH_AGENTS");
    run_with(install, b"", Duration::from_secs(300))
}

/// `./install --uninstall DESTDIR=DEST PREFIX=/opt/mitogen-fakessh`, with
/// no build tree at all.
fn run_uninstall(dest: &Path) -> Outcome {
    let mut install = Command::new(workspace().join("install"));
    install
        .arg("--uninstall")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={PREFIX}"))
        .env("CARGO_TARGET_DIR", "/nonexistent/mitogen-fakessh-build");
    run_with(install, b"", Duration::from_secs(60))
}

/// An installed copy, its build tree gone.
struct Installed {
    /// DESTDIR.
    dest: tempfile::TempDir,
    /// DESTDIR + PREFIX.
    root: PathBuf,
    /// An empty `XDG_DATA_HOME`: no agents of the user's.
    data: tempfile::TempDir,
    /// The agents the build tree had (`linux-MACHINE` → its bytes).
    built: Vec<(String, Vec<u8>)>,
}

fn install() -> Installed {
    static_agent("x86_64");
    let build = copy_of_the_build();
    let mut built = Vec::new();
    for entry in std::fs::read_dir(build.path().join("agents")).unwrap() {
        let dir = entry.unwrap().path();
        built.push((
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(dir.join("mitogen-fakessh")).unwrap(),
        ));
    }
    built.sort();
    let dest = tempfile::tempdir().unwrap();
    run_install(build.path(), dest.path())
        .assert_no_panic()
        .expect_code(0);
    let gone = build.path().to_path_buf();
    build.close().unwrap();
    assert!(!gone.exists());
    let root = dest.path().join(PREFIX.trim_start_matches('/'));
    Installed {
        dest,
        root,
        data: tempfile::tempdir().unwrap(),
        built,
    }
}

impl Installed {
    fn exe(&self) -> PathBuf {
        self.root.join("bin/mitogen-fakessh")
    }

    fn agent(&self, machine: &str) -> PathBuf {
        self.root
            .join("lib/mitogen-fakessh/agents")
            .join(format!("linux-{machine}/mitogen-fakessh"))
    }

    /// The installed executable with `args`, as `fakessh()` runs ours: no
    /// terminal, no ssh-agent, and no agents but the installed ones.
    fn run(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new("setsid");
        cmd.arg(self.exe())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("MITOGEN_FAKESSH_AGENTS")
            .env("XDG_DATA_HOME", self.data.path());
        run_with(cmd, b"", Duration::from_secs(180))
    }

    /// `-v --ssh-config CFG --to CHAIN -- sh -c SCRIPT`.
    fn via(&self, cfg: &str, chain: &str, script: &str) -> Outcome {
        self.run(&[
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

    /// That the log shows the installed agent for `machine` (by its size
    /// unpacked: the host executable is several times larger) uploaded.
    fn assert_uploaded(&self, log: &str, machine: &str) {
        let size = std::fs::metadata(self.agent(machine)).unwrap().len();
        let want = format!("uploading agent for Linux {machine} (");
        assert!(
            log.lines()
                .any(|l| l.contains(&want) && l.contains(&format!(" {size} bytes unpacked)"))),
            "the installed {machine} agent ({size} bytes) was not uploaded:\n{log}"
        );
    }
}

/// `mitogen-fakessh-build-id:ID;` as it appears in an executable.
fn build_stamp(bytes: &[u8]) -> Option<String> {
    let marker = b"mitogen-fakessh-build-id:";
    let at = memchr::memmem::find(bytes, marker)?;
    let rest = &bytes[at..];
    let end = rest.iter().position(|&b| b == b';')?;
    Some(String::from_utf8_lossy(&rest[..=end]).into_owned())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
#[ignore = "needs the static agents of ./build-agents, man and bash (run ./tests/run)"]
fn the_install_holds_the_executable_every_agent_the_man_page_and_completions() {
    require("man");
    require("bash");
    let installed = install();
    assert_eq!(mode(&installed.exe()), 0o755);
    let exe = std::fs::read(installed.exe()).unwrap();
    assert_eq!(exe, std::fs::read(bin()).unwrap(), "another executable");
    let stamp = build_stamp(&exe).expect("the installed executable has no build id");

    // Every agent built, byte for byte, of the executable's build.
    for (dir, bytes) in &installed.built {
        let machine = dir.strip_prefix("linux-").unwrap();
        let agent = installed.agent(machine);
        assert_eq!(mode(&agent), 0o755, "{}", agent.display());
        assert!(&std::fs::read(&agent).unwrap() == bytes, "{dir} differs");
        assert_eq!(build_stamp(bytes).as_deref(), Some(stamp.as_str()), "{dir}");
    }
    // ... and the installed copy lists them, from where they were put.
    let listed = installed.run(&["agents"]);
    listed.assert_no_panic().expect_code(0);
    let listing = listed.stdout_text();
    for (dir, _) in &installed.built {
        let machine = dir.strip_prefix("linux-").unwrap();
        let agent = installed.agent(machine).display().to_string();
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&format!("Linux {machine} ")) && l.ends_with(&agent)),
            "`agents` does not list {agent}:\n{listing}"
        );
    }
    assert!(
        !listing.contains(&workspace().join("target").display().to_string()),
        "the installed copy looks in the build tree:\n{listing}"
    );

    // The man page renders.
    let page = installed.root.join("share/man/man1/mitogen-fakessh.1");
    assert_eq!(mode(&page), 0o644);
    let mut man = Command::new("man");
    man.arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80");
    let rendered = run_with(man, b"", Duration::from_secs(60));
    rendered.expect_code(0);
    let text = rendered.stdout_text();
    for heading in ["NAME", "SYNOPSIS", "AGENTS", "EXIT STATUS"] {
        assert!(
            text.lines().any(|l| l == heading),
            "man -l {} lacks {heading}:\n{text}",
            page.display()
        );
    }
    assert!(!text.contains(".TH"), "unrendered roff:\n{text}");

    // The completions: bash's defines them for the command.
    for file in [
        "share/bash-completion/completions/mitogen-fakessh",
        "share/zsh/site-functions/_mitogen-fakessh",
        "share/fish/vendor_completions.d/mitogen-fakessh.fish",
    ] {
        let path = installed.root.join(file);
        assert_eq!(mode(&path), 0o644, "{file}");
        assert!(
            std::fs::metadata(&path).unwrap().len() > 0,
            "{file} is empty"
        );
    }
    let bash = installed
        .root
        .join("share/bash-completion/completions/mitogen-fakessh");
    let mut complete = Command::new("bash");
    complete.arg("-c").arg(format!(
        "source '{}' && complete -p mitogen-fakessh",
        bash.display()
    ));
    let defined = run_with(complete, b"", Duration::from_secs(30));
    defined.expect_code(0);
    assert!(
        defined.stdout_text().contains("mitogen-fakessh"),
        "{}",
        defined.stdout_text()
    );

    // A session through the installed copy.
    let local = installed.run(&["--to", "local", "--", "sh", "-c", "ssh h echo hi"]);
    local.assert_no_panic().expect_code(0);
    assert_eq!(local.stdout_text(), "hi\n");
}

#[test]
#[ignore = "needs the static agents of ./build-agents (run ./tests/run)"]
fn an_agent_from_other_sources_stops_the_install_before_anything_is_written() {
    static_agent("x86_64");
    let build = copy_of_the_build();
    // An executable without this build's id, where an agent would be.
    let other = build.path().join("agents/linux-riscv64/mitogen-fakessh");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(which("true").expect("true"), &other).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = run_install(build.path(), dest.path());
    out.assert_no_panic().expect_error(
        1,
        &format!(
            "{} was built from other sources than this mitogen-fakessh",
            other.display()
        ),
    );
    out.expect_stderr("install: an agent in ");
    assert_eq!(
        std::fs::read_dir(dest.path()).unwrap().count(),
        0,
        "the refused install wrote under DESTDIR"
    );
    // Without it, the same tree installs.
    std::fs::remove_dir_all(other.parent().unwrap()).unwrap();
    run_install(build.path(), dest.path()).expect_code(0);
}

#[test]
#[ignore = "needs the static agents of ./build-agents x86_64 aarch64 (run ./tests/run)"]
fn a_later_install_keeps_agents_of_these_sources_and_uninstall_removes_every_file() {
    static_agent("aarch64");
    let installed = install();
    let aarch64 = installed.agent("aarch64");
    let riscv64 = installed.agent("riscv64");
    // An agent of other sources left in the prefix (an earlier version's).
    std::fs::create_dir_all(riscv64.parent().unwrap()).unwrap();
    std::fs::copy(which("true").expect("true"), &riscv64).unwrap();
    // Built this time: the x86_64 agent only.
    let build = copy_of_the_build();
    for entry in std::fs::read_dir(build.path().join("agents")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.ends_with("linux-x86_64") {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
    let again = run_install(build.path(), installed.dest.path());
    again.assert_no_panic().expect_code(0);
    again.expect_stderr(&format!(
        "install: kept {} (installed before, same sources)",
        aarch64.display()
    ));
    again.expect_stderr(&format!(
        "install: removed {} (installed before, from other sources)",
        riscv64.display()
    ));
    assert!(aarch64.is_file());
    assert!(!riscv64.parent().unwrap().exists());
    installed.run(&["agents"]).expect_code(0);

    run_uninstall(installed.dest.path())
        .assert_no_panic()
        .expect_code(0);
    let mut left = Vec::new();
    let mut dirs = vec![installed.dest.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => dirs.push(path),
                false => left.push(path),
            }
        }
    }
    assert!(left.is_empty(), "--uninstall left {left:?}");
    assert!(!installed.root.join("lib/mitogen-fakessh").exists());
}

#[test]
#[ignore = "needs root, sshd, runuser, the mfs-deploy account and the x86_64 agent (run ./tests/run)"]
fn an_installed_agent_another_user_replaced_is_never_uploaded() {
    require_sshd();
    require_account("mfs-deploy");
    require("runuser");
    let installed = install();
    let agent = installed.agent("x86_64");
    let shared = agent.parent().unwrap();
    // A prefix installed carelessly: the way in open to all, the agents
    // directory writable by all.
    std::fs::set_permissions(
        installed.dest.path(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The attacker's agent: a script carrying this build's id, that leaves
    // a mark wherever it runs.
    let stamp = build_stamp(&std::fs::read(installed.exe()).unwrap()).unwrap();
    let marks = tempfile::tempdir().unwrap();
    std::fs::set_permissions(marks.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mark = marks.path().join("the-attackers-agent-ran");
    let trojan = format!("#!/bin/sh\n# {stamp}\ntouch '{}'\n", mark.display());
    // Another local account puts it in place, as itself.
    let planted = Command::new("runuser")
        .args(["-u", "mfs-deploy", "--", "sh", "-c"])
        .arg("printf '%s' \"$1\" > \"$2.new\" && chmod 755 \"$2.new\" && mv -f \"$2.new\" \"$2\"")
        .args(["sh", &trojan])
        .arg(&agent)
        .output()
        .unwrap();
    assert!(
        planted.status.success(),
        "the attacker could not plant: {}",
        String::from_utf8_lossy(&planted.stderr)
    );
    let attacker = uid_of("mfs-deploy");
    assert_eq!(std::fs::metadata(&agent).unwrap().uid(), attacker);
    let refused = format!(
        "{} is not used: it belongs to uid {attacker} (another user could replace it)",
        agent.display()
    );

    let sshd = Sshd::start();
    let out = installed.via(&sshd.ssh_config(), "ssh:target", "ssh h echo hi");
    assert!(!mark.exists(), "the attacker's agent ran");
    // This executable serves Linux x86_64 instead (the loopback host has
    // its C library), and says why.
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "hi\n");
    out.expect_stderr(&refused);
    assert!(!out.stderr_text().contains(&format!(
        "uploading agent for Linux x86_64 ({} bytes",
        trojan.len()
    )));
    installed
        .run(&["agents"])
        .assert_no_panic()
        .expect_error(1, &refused);
    assert!(!mark.exists(), "the attacker's agent ran");
}

#[test]
#[ignore = "needs root, sshd, busybox-static, the mfs-chroot account and the x86_64 agent (run ./tests/run)"]
fn the_installed_copy_reaches_a_host_with_no_libc() {
    require_sshd();
    require_account("mfs-chroot");
    let installed = install();
    let chroot = Chroot::busybox(
        Path::new("/bin/busybox"),
        APPLETS,
        &[Account {
            name: "mfs-chroot",
            uid: uid_of("mfs-chroot"),
            home: "/home/mfs-chroot",
            shell: "/bin/sh",
        }],
    );
    assert!(!chroot.path("lib").exists() && !chroot.path("usr").exists());
    let sshd = chrooted_sshd(&chroot, "mfs-chroot");
    let out = installed.via(&sshd.ssh_config(), "ssh:h", "ssh h 'echo hi; uname -m'");
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "hi\nx86_64\n");
    installed.assert_uploaded(&out.stderr_text(), "x86_64");
}

#[test]
#[ignore = "needs root, sshd, qemu-user-static with binfmt_misc, busybox-static:arm64 and the aarch64 agent (run ./tests/run)"]
fn the_installed_copy_reaches_an_aarch64_host() {
    require_sshd();
    require_qemu_aarch64();
    static_agent("aarch64");
    let installed = install();
    // root logs in; its login shell (from this machine's passwd) is a
    // script that runs busybox's sh.
    let passwd = Command::new("getent")
        .args(["passwd", "root"])
        .output()
        .unwrap();
    let root_shell = String::from_utf8(passwd.stdout)
        .unwrap()
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut applets = APPLETS.to_vec();
    applets.push("gzip");
    let mut chroot = Chroot::busybox(
        Path::new(ARM64_BUSYBOX),
        &applets,
        &[Account {
            name: "root",
            uid: 0,
            home: "/root",
            shell: &root_shell,
        }],
    );
    std::fs::create_dir_all(
        chroot.path(Path::new(&root_shell).parent().unwrap().to_str().unwrap()),
    )
    .unwrap();
    chroot.script(&root_shell, "exec /bin/sh \"$@\"");
    chroot.mount_proc_and_pts();
    let sshd = chrooted_sshd(&chroot, "root");
    let out = installed.via(&sshd.ssh_config(), "ssh:h", "ssh h uname -m");
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "aarch64\n");
    installed.assert_uploaded(&out.stderr_text(), "aarch64");
}
