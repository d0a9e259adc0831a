//! The recipes users come for, each run for real through
//! `ssh:mfs-deploy@target,sudo:root` against the real sshd, where
//! mfs-deploy's sudo demands a tty and a password (`.ci/accounts.sh`):
//! Ansible's `ansible.posix.synchronize` (limited by Ansible itself to
//! passwordless sudo), borg, hg and unison, each writing root-owned files
//! into a directory only root may enter. And, for fleets, the message of a
//! host that fails names that host first.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sshd::{Sshd, require_sshd};
use common::*;

/// The chain every recipe goes through.
const CHAIN: &str = "ssh:mfs-deploy@target,sudo:root";

/// Where `.ci/install-ansible` puts Ansible.
const ANSIBLE: &str = "/var/lib/mitogen-fakessh-tests/ansible/bin";

/// One recipe's machine: the real sshd (logins as mfs-deploy), the
/// password file, a root-only directory on the "remote" side and a HOME of
/// its own (the tools keep caches and state there).
struct Recipe {
    sshd: Sshd,
    tmp: tempfile::TempDir,
    password: String,
    root_only: PathBuf,
    home: PathBuf,
}

impl Recipe {
    fn new() -> Recipe {
        require_sshd();
        require_accounts();
        let sshd = Sshd::start();
        sshd.write_config_for("target", "mfs-deploy");
        let tmp = tempfile::tempdir().unwrap();
        let password = tmp.path().join("password");
        std::fs::write(&password, format!("{DEPLOY_PASSWORD}\n")).unwrap();
        // Only its owner may read it: mitogen-fakessh refuses it otherwise.
        set_mode(&password, 0o600);
        set_mode(tmp.path(), 0o755);
        let root_only = tmp.path().join("root-only");
        std::fs::create_dir(&root_only).unwrap();
        set_mode(&root_only, 0o700);
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        Recipe {
            sshd,
            tmp,
            password: password.display().to_string(),
            root_only,
            home,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `mitogen-fakessh --ssh-config CFG --password-file PW --to CHAIN --
    /// PROGRAM ARGS...` in `cwd`, with `env`, no terminal and a deadline.
    fn run(&self, cwd: &Path, env: &[(&str, &str)], program: &str, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(which("setsid").expect("setsid (util-linux)"));
        cmd.arg(bin())
            .args(["--ssh-config", &self.sshd.ssh_config()])
            .args(["--password-file", &self.password])
            .args(["--to", CHAIN, "--", program])
            .args(args)
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK");
        for (key, value) in env {
            cmd.env(key, value);
        }
        run_with(cmd, b"", Duration::from_secs(240))
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and directory under `root` (itself included) belongs to
/// root.
fn assert_root_owned(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.uid(), 0, "{} is not root's", path.display());
        seen += 1;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    assert!(seen > 1, "{} is empty", root.display());
}

/// A tree the version-control and backup tools all take (hg refuses a
/// newline in a name): a space, nesting, and a file of 300 KB.
fn plain_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("with space.txt"), b"a file with a space\n").unwrap();
    std::fs::write(root.join("a/config.ini"), b"[app]\nport = 8080\n").unwrap();
    write_random_file(&root.join("a/b/data.bin"), 300_000, 11);
}

/// Hand `tree` to mfs-webapp, so that what lands root-owned was created by
/// root on the far side, not copied with its owner.
fn give_to_webapp(tree: &Path) {
    let out = Command::new("chown")
        .args(["-R", "mfs-webapp:mfs-webapp"])
        .arg(tree)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
#[ignore = "needs root, sshd, the test accounts and Ansible (run ./tests/run)"]
fn ansible_synchronize_into_a_root_only_directory() {
    require("rsync");
    let playbook_bin = Path::new(ANSIBLE).join("ansible-playbook");
    assert!(
        playbook_bin.is_file(),
        "{} is missing: run ./tests/run (as root), which runs .ci/install-ansible",
        playbook_bin.display()
    );
    let recipe = Recipe::new();
    let src = recipe.path("site");
    make_tree(&src, 1 << 20);
    give_to_webapp(&src);
    let dest = recipe.root_only.join("www");
    // The ssh connection plugin runs `id -un` (ControlMaster, ControlPath,
    // ControlPersist and friends on the shim's command line, then sftp
    // and python3 on the far side); synchronize runs rsync here with
    // `--rsh 'ssh -S none -o StrictHostKeyChecking=no ...'`.
    std::fs::write(
        recipe.path("inventory"),
        "target ansible_connection=ssh ansible_python_interpreter=/usr/bin/python3\n",
    )
    .unwrap();
    std::fs::write(
        recipe.path("site.yml"),
        format!(
            "- hosts: target\n  gather_facts: false\n  tasks:\n\
             \x20   - ansible.builtin.command: id -un\n      register: whoami\n\
             \x20   - ansible.builtin.debug:\n        msg: \"remote-user={{{{ whoami.stdout }}}}\"\n\
             \x20   - ansible.posix.synchronize:\n        src: \"{src}/\"\n        dest: \"{dest}/\"\n\
             \x20       owner: false\n        group: false\n",
            src = src.display(),
            dest = dest.display()
        ),
    )
    .unwrap();
    let ansible_tmp = recipe.path("ansible-local").display().to_string();
    let remote_tmp = recipe.path("ansible-remote").display().to_string();
    let path = format!("{ANSIBLE}:{}", std::env::var("PATH").unwrap_or_default());
    let env = [
        ("PATH", path.as_str()),
        ("LC_ALL", "C.UTF-8"),
        ("ANSIBLE_NOCOLOR", "1"),
        ("ANSIBLE_LOCAL_TEMP", &ansible_tmp),
        ("ANSIBLE_REMOTE_TEMP", &remote_tmp),
        ("PYTHONWARNINGS", "ignore"),
    ];

    // Plain Ansible through OpenSSH, as its documentation has it: become
    // with a password makes synchronize run `sudo rsync` on the far side,
    // where this sudo wants a tty and a password, and fails.
    let plain_dest = recipe.root_only.join("plain");
    std::fs::write(
        recipe.path("plain.yml"),
        format!(
            "- hosts: target\n  gather_facts: false\n  become: true\n  tasks:\n\
             \x20   - ansible.posix.synchronize:\n        src: \"{src}/\"\n        dest: \"{dest}/\"\n\
             \x20       use_ssh_args: true\n",
            src = src.display(),
            dest = plain_dest.display()
        ),
    )
    .unwrap();
    let mut plain = Command::new(&playbook_bin);
    plain
        .args(["-i", "inventory", "plain.yml", "-e"])
        .arg(format!("ansible_become_password={DEPLOY_PASSWORD}"))
        .arg("-e")
        .arg(format!(
            "ansible_ssh_common_args='-F {}'",
            recipe.sshd.ssh_config()
        ))
        .current_dir(recipe.tmp.path())
        .env("HOME", &recipe.home)
        .env_remove("SSH_AUTH_SOCK")
        .envs(env);
    let plain = run_with(plain, b"", Duration::from_secs(120));
    assert_ne!(plain.code(), 0, "{}", plain.stdout_text());
    assert!(
        plain.stdout_text().contains("must have a tty"),
        "{}",
        plain.stdout_text()
    );
    assert!(!plain_dest.exists());

    // The same push, without become, through mitogen-fakessh's chain.
    let out = recipe.run(
        recipe.tmp.path(),
        &env,
        &playbook_bin.display().to_string(),
        &["-i", "inventory", "site.yml"],
    );
    out.assert_no_panic().expect_code(0);
    let text = out.stdout_text();
    assert!(text.contains("remote-user=root"), "{text}");
    assert!(text.contains("failed=0"), "{text}");
    assert_same_tree(&src, &dest);
    assert_root_owned(&dest);
}

#[test]
#[ignore = "needs root, sshd, the test accounts and borg (run ./tests/run)"]
fn borg_init_and_create_in_a_root_only_repository() {
    require("borg");
    let recipe = Recipe::new();
    let src = recipe.path("data");
    plain_tree(&src);
    give_to_webapp(&src);
    let repo = recipe.root_only.join("backups");
    let url = format!("ssh://target{}", repo.display());
    let base = recipe.path("borg-base").display().to_string();
    let env = [
        ("BORG_BASE_DIR", base.as_str()),
        ("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes"),
        ("LC_ALL", "C.UTF-8"),
    ];
    recipe
        .run(
            &src,
            &env,
            "borg",
            &["init", "--encryption=none", "--", &url],
        )
        .assert_no_panic()
        .expect_code(0);
    recipe
        .run(
            &src,
            &env,
            "borg",
            &["create", &format!("{url}::first"), "."],
        )
        .assert_no_panic()
        .expect_code(0);
    // The repository is root's, in a directory mfs-deploy cannot enter.
    assert!(repo.join("config").is_file(), "no repository at {repo:?}");
    assert_root_owned(&repo);
    // What was stored comes back, byte for byte.
    let listed = recipe.run(&src, &env, "borg", &["list", "--short", &url]);
    listed.assert_no_panic().expect_code(0);
    assert_eq!(listed.stdout_text(), "first\n");
    let restored = recipe.path("restored");
    std::fs::create_dir(&restored).unwrap();
    recipe
        .run(
            &restored,
            &env,
            "borg",
            &["extract", &format!("{url}::first")],
        )
        .assert_no_panic()
        .expect_code(0);
    assert_same_tree(&src, &restored);
}

#[test]
#[ignore = "needs root, sshd, the test accounts and hg (run ./tests/run)"]
fn hg_clone_and_push_to_a_root_only_repository() {
    require("hg");
    let recipe = Recipe::new();
    let hg = |cwd: &Path, args: &[&str]| {
        let out = Command::new("hg")
            .args(args)
            .current_dir(cwd)
            .env("HGPLAIN", "1")
            .env("HGUSER", "Recipe <recipe@example.invalid>")
            .env("HOME", &recipe.home)
            .output()
            .unwrap();
        assert!(out.status.success(), "hg {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // A root-owned repository with one changeset, reached as
    // ssh://target//ABSOLUTE/PATH.
    let central = recipe.root_only.join("central");
    plain_tree(&central);
    hg(&central, &["init"]);
    hg(&central, &["commit", "-A", "-m", "first"]);
    let env = [
        ("HGPLAIN", "1"),
        ("HGUSER", "Recipe <recipe@example.invalid>"),
    ];
    let url = format!("ssh://target/{}", central.display());
    let work = recipe.path("work");
    recipe
        .run(
            recipe.tmp.path(),
            &env,
            "hg",
            &["clone", &url, &work.display().to_string()],
        )
        .assert_no_panic()
        .expect_code(0);
    let expected = recipe.path("expected");
    plain_tree(&expected);
    assert_eq!(
        std::fs::read(work.join("a/b/data.bin")).unwrap(),
        std::fs::read(expected.join("a/b/data.bin")).unwrap()
    );
    std::fs::write(work.join("added.txt"), b"pushed through sudo:root\n").unwrap();
    hg(&work, &["commit", "-A", "-m", "second"]);
    recipe
        .run(&work, &env, "hg", &["push"])
        .assert_no_panic()
        .expect_code(0);
    // The central repository has the changeset, and all it wrote is root's.
    assert_eq!(
        hg(&central, &["log", "-r", "tip", "--template", "{desc}"]),
        "second"
    );
    assert_eq!(
        hg(&central, &["cat", "-r", "tip", "added.txt"]),
        "pushed through sudo:root\n"
    );
    assert_root_owned(&central.join(".hg"));
}

#[test]
#[ignore = "needs root, sshd, the test accounts and unison (run ./tests/run)"]
fn unison_syncs_a_root_only_directory_both_ways() {
    require("unison");
    let recipe = Recipe::new();
    let local = recipe.path("local");
    plain_tree(&local);
    give_to_webapp(&local);
    let remote = recipe.root_only.join("shared");
    std::fs::create_dir(&remote).unwrap();
    std::fs::write(remote.join("from-remote.txt"), b"written by root\n").unwrap();
    // unison keeps its archives in $UNISON: here, and on the far side (as
    // root) in the root-only directory.
    let local_state = recipe.path("unison-local");
    let remote_state = recipe.root_only.join("unison-state");
    let out = recipe.run(
        recipe.tmp.path(),
        &[("UNISON", &local_state.display().to_string())],
        "unison",
        &[
            "-batch",
            "-silent",
            "-servercmd",
            &format!("env UNISON={} unison", remote_state.display()),
            &local.display().to_string(),
            &format!("ssh://target/{}", remote.display()),
        ],
    );
    out.assert_no_panic().expect_code(0);
    // Both sides hold both sides' files.
    assert_same_tree(&local, &remote);
    assert_eq!(
        std::fs::read(local.join("from-remote.txt")).unwrap(),
        b"written by root\n"
    );
    assert_root_owned(&remote);
    assert_root_owned(&remote_state);
}

#[test]
fn a_fleet_host_that_fails_is_named_first() {
    // fleetbad's rule sends it to a closed port; fleet9's chain names it
    // (its ssh config sends it to the same closed port).
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ssh_config");
    std::fs::write(&cfg, "Host fleet9\n  HostName 127.0.0.1\n  Port 1\n").unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &cfg.display().to_string(),
        "--host",
        "fleetbad=ssh:127.0.0.1:1",
        "--host",
        "fleet*=ssh:%h",
        "--",
        "sh",
        "-c",
        "ssh fleetbad true; echo fleetbad=$?; ssh fleet9 true; echo fleet9=$?",
    ]);
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), "fleetbad=255\nfleet9=255\n");
    // As OpenSSH's `ssh: connect to host 127.0.0.1 port 1: Connection
    // refused`, one line, with the name that was asked for in front.
    let err = out.stderr_text();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "ssh: fleetbad: ssh:127.0.0.1:1: connect to host 127.0.0.1 port 1: connection refused",
            "ssh: ssh:fleet9: connect to host 127.0.0.1 port 1: connection refused",
        ],
        "{err}"
    );
}
