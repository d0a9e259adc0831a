//! A root directory for sshd's `ChrootDirectory` that holds nothing but a
//! static busybox (as `/bin/sh` and the few commands asked for), the
//! account files and `/dev/null`: a host with no C library at all. The
//! busybox may be another architecture's, run by qemu-user through
//! binfmt_misc.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the test chroots live: sshd wants every component of the path
/// root-owned and writable by nobody else, which rules out /tmp.
const BASE: &str = "/var/lib/mitogen-fakessh-tests";

/// Where `./tests/run` unpacks Debian's `busybox-static:arm64`.
pub const ARM64_BUSYBOX: &str = "/var/lib/mitogen-fakessh-tests/busybox-arm64/bin/busybox";

/// An account inside the chroot.
pub struct Account<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub home: &'a str,
    pub shell: &'a str,
}

pub struct Chroot {
    pub dir: PathBuf,
    mounts: Vec<PathBuf>,
}

/// Run a command that must succeed.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Chroot {
    /// `busybox` (a static executable) as `/bin/busybox`, `/bin/sh` and
    /// each of `applets`; `accounts` in `/etc/passwd` with their homes;
    /// `/dev/null`, and `/tmp` (mode 1777).
    pub fn busybox(busybox: &Path, applets: &[&str], accounts: &[Account]) -> Chroot {
        assert!(
            busybox.is_file(),
            "{} is missing: run ./tests/run as root (it installs busybox-static and unpacks busybox-static:arm64)",
            busybox.display()
        );
        std::fs::create_dir_all(BASE).unwrap();
        std::fs::set_permissions(BASE, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("chroot.")
            .tempdir_in(BASE)
            .unwrap()
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chroot = Chroot {
            dir,
            mounts: Vec::new(),
        };
        for sub in ["bin", "etc", "dev", "home"] {
            std::fs::create_dir_all(chroot.path(sub)).unwrap();
        }
        std::fs::copy(busybox, chroot.path("bin/busybox")).unwrap();
        std::fs::set_permissions(
            chroot.path("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        for applet in std::iter::once(&"sh").chain(applets) {
            symlink("busybox", chroot.path(&format!("bin/{applet}"))).unwrap();
        }
        let mut passwd = String::new();
        let mut group = String::from("root:x:0:\n");
        for a in accounts {
            passwd.push_str(&format!(
                "{}:x:{}:{}::{}:{}\n",
                a.name, a.uid, a.uid, a.home, a.shell
            ));
            if a.uid != 0 {
                group.push_str(&format!("{}:x:{}:\n", a.name, a.uid));
            }
            let home = chroot.path(a.home.trim_start_matches('/'));
            std::fs::create_dir_all(&home).unwrap();
            std::os::unix::fs::chown(&home, Some(a.uid), Some(a.uid)).unwrap();
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(chroot.path("etc/passwd"), passwd).unwrap();
        std::fs::write(chroot.path("etc/group"), group).unwrap();
        let tmp = chroot.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        run(
            "mknod",
            &[
                "-m",
                "666",
                chroot.path("dev/null").to_str().unwrap(),
                "c",
                "1",
                "3",
            ],
        );
        chroot
    }

    /// A path inside the chroot, as seen from outside.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// A shell script at `inside` (for a login shell the chroot lacks, or
    /// a command replaced for a test).
    pub fn script(&self, inside: &str, body: &str) {
        let path = self.path(inside);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Point `inside` back at busybox.
    pub fn applet(&self, inside: &str) {
        let path = self.path(inside);
        let _ = std::fs::remove_file(&path);
        symlink("busybox", path).unwrap();
    }

    /// `/proc`, and a pty multiplexer of its own (`/dev/pts`, `/dev/ptmx`):
    /// what a privilege hop needs inside.
    pub fn mount_proc_and_pts(&mut self) {
        for (fstype, inside, options) in [
            ("proc", "proc", "nosuid,nodev,noexec"),
            ("devpts", "dev/pts", "newinstance,ptmxmode=0666,mode=620"),
        ] {
            let target = self.path(inside);
            std::fs::create_dir_all(&target).unwrap();
            run(
                "mount",
                &[
                    "-t",
                    fstype,
                    "-o",
                    options,
                    fstype,
                    target.to_str().unwrap(),
                ],
            );
            self.mounts.push(target);
        }
        symlink("pts/ptmx", self.path("dev/ptmx")).unwrap();
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        let mut unmounted = true;
        for target in self.mounts.iter().rev() {
            unmounted &= Command::new("umount")
                .arg("-l")
                .arg(target)
                .status()
                .is_ok_and(|s| s.success());
        }
        // Never delete through a mount that is still there; keep it to
        // look at when MFS_KEEP_CHROOT is set.
        if std::env::var_os("MFS_KEEP_CHROOT").is_some() {
            eprintln!("kept {}", self.dir.display());
        } else if unmounted {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// binfmt_misc runs aarch64 executables with qemu, also inside a chroot
/// (the `F` flag: the interpreter is opened when registered).
pub fn require_qemu_aarch64() {
    let entry =
        std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    assert!(
        entry.starts_with("enabled")
            && entry
                .lines()
                .any(|l| l.starts_with("flags:") && l.contains('F')),
        "binfmt_misc has no enabled qemu-aarch64 entry with the F flag ({entry:?}): run ./tests/run as root, which registers it (if the kernel refuses binfmt_misc, it says so)"
    );
}

/// What the bootstrap and the tests run inside a chroot. No gzip unless
/// asked: the agent then goes raw.
pub const APPLETS: &[&str] = &[
    "cat",
    "chmod",
    "cp",
    "cut",
    "echo",
    "head",
    "id",
    "mkdir",
    "mv",
    "rm",
    "sha256sum",
    "tee",
    "uname",
    "wc",
    "ls",
];

/// sshd chrooting every login into `chroot`; the config names it `h`.
pub fn chrooted_sshd(chroot: &Chroot, user: &str) -> crate::sshd::Sshd {
    let sshd =
        crate::sshd::Sshd::start_with(&[&format!("ChrootDirectory={}", chroot.dir.display())]);
    std::fs::write(
        sshd.path("ssh_config"),
        sshd.config_block_for("h", user, ""),
    )
    .unwrap();
    sshd
}
