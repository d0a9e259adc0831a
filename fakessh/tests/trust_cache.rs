//! The remote agent cache against an unprivileged user of the remote
//! host (`mfs-attacker`, from `.ci/accounts.sh`): it creates the shared
//! cache places first (`/dev/shm`, `/tmp`, `/var/tmp`), as its own
//! directories, as symbolic links to them, or finds one of the target's
//! writable by others, and plants there an "agent" that records who ran
//! it. The real tool then starts real sudo hops; nothing of the
//! attacker's may run, and the session completes or fails with one clear
//! line.
#![cfg(feature = "host")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const ATTACKER: &str = "mfs-attacker";

fn home_of(user: &str) -> PathBuf {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(line.trim().split(':').nth(5).unwrap())
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// Run `script` as the attacker.
fn as_attacker(script: &str) {
    let out = Command::new("runuser")
        .args(["-u", ATTACKER, "--", "sh", "-euc", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the attacker's set-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the attack leaves behind, removed at the end whatever happens.
struct Attack {
    paths: Vec<PathBuf>,
    /// Written by the planted "agent", should it ever run.
    marker: PathBuf,
    /// The planted "agent": it records who ran it, then fails.
    evil: String,
    _marker_dir: tempfile::TempDir,
    /// The places are the machine's (`/dev/shm/mitogen-fakessh-0`, root's
    /// cache): one attack at a time.
    _places: std::sync::MutexGuard<'static, ()>,
}

/// Held by each attack while it plants, races and cleans up.
static PLACES: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Attack {
    fn new() -> Attack {
        let places = PLACES.lock().unwrap_or_else(|p| p.into_inner());
        let marker_dir = tempfile::Builder::new()
            .prefix("mfs-marker.")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(marker_dir.path(), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        let marker = marker_dir.path().join("attacker-code-ran");
        Attack {
            paths: Vec::new(),
            evil: format!("#!/bin/sh\nid -u >> {}\nexit 1\n", marker.display()),
            marker,
            _marker_dir: marker_dir,
            _places: places,
        }
    }

    /// Remove `path` now (a cache of an earlier run, so the attacker can
    /// create it first) and at the end.
    fn clear(&mut self, path: &Path) {
        let _ = std::fs::remove_dir_all(path);
        let _ = std::fs::remove_file(path);
        self.paths.push(path.to_path_buf());
    }

    /// Shell commands that plant the evil agent `name` (and the mark of
    /// an agent seen to run) in `dir`.
    fn plant(&self, dir: &Path, name: &str) -> String {
        format!(
            "printf '%s' '{evil}' > {dir}/{name}; chmod 755 {dir}/{name}; : > {dir}/.ok-{name}; ",
            evil = self.evil,
            dir = dir.display()
        )
    }

    fn assert_nothing_ran(&self) {
        assert!(
            !self.marker.exists(),
            "the attacker's planted agent ran, as uid {}",
            std::fs::read_to_string(&self.marker).unwrap_or_default()
        );
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_dir_all(path);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The attacker owns `/dev/shm/mitogen-fakessh-UID`, points
/// `/tmp/mitogen-fakessh-UID` at a directory of its own, and finds
/// `/var/tmp/mitogen-fakessh-UID` (the target's) writable by everyone; each
/// holds an "agent" with the checksum's name and the mark of an agent seen
/// to run. This build's agent is not in the target's own cache: the first
/// `sudo:TARGET` of a new build looks in the shared places.
fn shared_places_planted_before_the_first_sudo(target: &str) {
    require_accounts();
    require_account(ATTACKER);
    require("runuser");
    require("sudo");
    require("sha256sum");
    let uid = uid_of(target);
    // A privilege hop uploads the executable that runs it: ours.
    let hash = sha256(Path::new(bin()));
    let own_cache = home_of(target).join(".cache/mitogen-fakessh");
    let _ = std::fs::remove_file(own_cache.join(&hash));
    let _ = std::fs::remove_file(own_cache.join(format!(".ok-{hash}")));

    let mut attack = Attack::new();
    let shm = PathBuf::from(format!("/dev/shm/mitogen-fakessh-{uid}"));
    let tmp = PathBuf::from(format!("/tmp/mitogen-fakessh-{uid}"));
    let var_tmp = PathBuf::from(format!("/var/tmp/mitogen-fakessh-{uid}"));
    let lair = PathBuf::from(format!("/tmp/mfs-lair-{}", std::process::id()));
    for path in [&shm, &tmp, &var_tmp, &lair] {
        attack.clear(path);
    }
    as_attacker(&format!(
        "mkdir -m 755 {shm}; {plant_shm} mkdir -m 755 {lair}; {plant_lair} ln -s {lair} {tmp}",
        shm = shm.display(),
        lair = lair.display(),
        tmp = tmp.display(),
        plant_shm = attack.plant(&shm, &hash),
        plant_lair = attack.plant(&lair, &hash),
    ));
    // The target's own place, writable by others: what is in it is the
    // target's, but anyone may have swapped it.
    std::fs::create_dir(&var_tmp).unwrap();
    std::fs::write(var_tmp.join(&hash), &attack.evil).unwrap();
    std::fs::write(var_tmp.join(format!(".ok-{hash}")), "").unwrap();
    for path in [
        var_tmp.join(&hash),
        var_tmp.join(format!(".ok-{hash}")),
        var_tmp.clone(),
    ] {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    }
    std::fs::set_permissions(&var_tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(var_tmp.join(&hash), std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = fakessh(&[
        "-v",
        "--to",
        &format!("local,sudo:{target}"),
        "--",
        "ssh",
        "h",
        "id -u",
    ]);
    attack.assert_nothing_ran();
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), format!("{uid}\n"));
    // The agent went to the target's own cache, nowhere else.
    out.expect_stderr(&format!("agent stored in {}", own_cache.display()));
    // And the next connection finds it there, still ignoring the others.
    let again = fakessh(&[
        "--to",
        &format!("local,sudo:{target}"),
        "--",
        "ssh",
        "h",
        "id -u",
    ]);
    attack.assert_nothing_ran();
    again.expect_code(0);
    assert_eq!(again.stdout_text(), format!("{uid}\n"));
}

#[test]
#[ignore = "needs root, sudo and the test accounts (run ./tests/run)"]
fn planted_shared_caches_never_run_as_root() {
    shared_places_planted_before_the_first_sudo("root");
}

#[test]
#[ignore = "needs root, sudo and the test accounts (run ./tests/run)"]
fn planted_shared_caches_never_run_as_a_service_account() {
    shared_places_planted_before_the_first_sudo("mfs-webapp");
}

/// `--agent-dir` is held to the same rules: a directory the attacker owns
/// or links, or one under a parent others may write, is refused with one
/// line that names it, and nothing planted in it runs.
#[test]
#[ignore = "needs root, sudo and the test accounts (run ./tests/run)"]
fn an_unsafe_agent_dir_is_refused_and_nothing_in_it_runs() {
    require_accounts();
    require_account(ATTACKER);
    require("runuser");
    require("sudo");
    let target = "mfs-webapp";
    let uid = uid_of(target);
    let hash = sha256(Path::new(bin()));
    let mut attack = Attack::new();
    let base = format!("/tmp/mfs-agent-dir-{}", std::process::id());
    let owned = PathBuf::from(format!("{base}-owned"));
    let link = PathBuf::from(format!("{base}-link"));
    let open_parent = PathBuf::from(format!("{base}-open"));
    let attacker_parent = PathBuf::from(format!("{base}-theirs"));
    for path in [&owned, &link, &open_parent, &attacker_parent] {
        attack.clear(path);
    }
    // The target's own private directory, inside the attacker's.
    as_attacker(&format!(
        "mkdir -m 755 {owned}; {plant} mkdir -m 755 {attacker_parent}",
        owned = owned.display(),
        attacker_parent = attacker_parent.display(),
        plant = attack.plant(&owned, &hash),
    ));
    let target_private = PathBuf::from(format!("{base}-private"));
    attack.clear(&target_private);
    let evil = attack.evil.clone();
    let mine = |dir: &Path| {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join(&hash), &evil).unwrap();
        std::fs::write(dir.join(format!(".ok-{hash}")), "").unwrap();
        for path in [
            dir.join(&hash),
            dir.join(format!(".ok-{hash}")),
            dir.to_path_buf(),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
        }
        std::fs::set_permissions(dir.join(&hash), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    };
    // A link of the attacker's to a private directory of the target's.
    mine(&target_private);
    as_attacker(&format!(
        "ln -s {} {}",
        target_private.display(),
        link.display()
    ));
    // The target's private directory under a parent anyone may write
    // (root's, not sticky).
    std::fs::create_dir(&open_parent).unwrap();
    std::fs::set_permissions(&open_parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    mine(&open_parent.join("agents"));
    // ... and under a directory of the attacker's.
    let under_theirs = attacker_parent.join("agents");
    mine(&under_theirs);

    for (dir, why) in [
        (owned.clone(), format!("not owned by uid {uid}")),
        (link.clone(), "a symbolic link".to_string()),
        (
            open_parent.join("agents"),
            format!("{} is writable by others", open_parent.display()),
        ),
        (
            under_theirs.clone(),
            format!("{} is owned by another user", attacker_parent.display()),
        ),
    ] {
        let dir = dir.display().to_string();
        let out = fakessh(&[
            "--agent-dir",
            &dir,
            "--to",
            &format!("local,sudo:{target}"),
            "--",
            "ssh",
            "h",
            "id -u",
        ]);
        attack.assert_nothing_ran();
        out.assert_no_panic().expect_error(
            255,
            &format!("the agent cannot run in any place tried: {dir} ({why});"),
        );
        let errors: Vec<_> = out
            .stderr_text()
            .lines()
            .filter(|l| l.contains("cannot run in any place"))
            .map(str::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "{}", out.stderr_text());
    }
    // The config file's agent-dir is the same.
    let config = attack._marker_dir.path().join("config");
    std::fs::write(&config, format!("agent-dir = \"{}\"\n", owned.display())).unwrap();
    let out = fakessh(&[
        "--config",
        &config.display().to_string(),
        "--to",
        &format!("local,sudo:{target}"),
        "--",
        "ssh",
        "h",
        "id -u",
    ]);
    attack.assert_nothing_ran();
    out.assert_no_panic().expect_error(
        255,
        &format!(
            "the agent cannot run in any place tried: {} (not owned by uid {uid});",
            owned.display()
        ),
    );
    // A safe one works.
    let good = PathBuf::from(format!("{base}-good"));
    attack.clear(&good);
    std::fs::create_dir(&good).unwrap();
    std::os::unix::fs::chown(&good, Some(uid), Some(uid)).unwrap();
    let out = fakessh(&[
        "--agent-dir",
        &good.display().to_string(),
        "--to",
        &format!("local,sudo:{target}"),
        "--",
        "ssh",
        "h",
        "id -u",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), format!("{uid}\n"));
    attack.assert_nothing_ran();
}

/// The attacker's side of the swap race: inotify tells it the moment a
/// reader (the bootstrap's hash) closes the genuine agent it planted, and
/// it renames its own "agent" over it at once, before the exec. Against a
/// bootstrap that hashes a path and then execs the path, this wins.
const SWAPPER: &str = r#"
import ctypes, os, sys
target, evil, ready = sys.argv[1], sys.argv[2], sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
IN_CLOSE_NOWRITE = 0x10
assert libc.inotify_add_watch(fd, target.encode(), IN_CLOSE_NOWRITE) >= 0
open(ready, "w").close()
os.read(fd, 4096)
os.rename(evil, target)
open(ready + ".swapped", "w").close()
"#;

/// The swap race, with real processes: the attacker's directory holds a
/// genuine copy of the agent (the checksum matches) and an inotify
/// watcher swaps it the moment it has been read. The hop must neither use
/// that directory nor run what it swaps in.
#[test]
#[ignore = "needs root, sudo, python3 and the test accounts (run ./tests/run)"]
fn a_swap_between_hash_and_exec_runs_nothing_of_the_attackers() {
    // A privilege hop uploads the executable that runs it: ours.
    swap_race(Path::new(bin()), &[], "local,sudo:root");
}

/// The same through the real sshd: the login's agent (uploaded) starts the
/// `sudo:root` hop there, under sudo's requiretty and a password.
#[test]
#[ignore = "needs root, sshd, sudo, python3, the test accounts and ./build-agents x86_64 (run ./tests/run)"]
fn a_swap_race_behind_ssh_and_sudo_runs_nothing_of_the_attackers() {
    common::sshd::require_sshd();
    let agent = common::static_agent("x86_64");
    let sshd = common::sshd::Sshd::start();
    sshd.write_config_for("target", "mfs-deploy");
    let password = sshd.path("password");
    std::fs::write(&password, "deploy-pw-4711\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    swap_race(
        &agent,
        &[
            "--ssh-config",
            &sshd.ssh_config(),
            "--password-file",
            &password.display().to_string(),
        ],
        "ssh:target,sudo:root",
    );
}

/// The attacker's directory `/dev/shm/mitogen-fakessh-0` holds a genuine
/// copy of `agent` (the checksum matches) and an inotify watcher swaps it
/// the moment it has been read; then `chain` ends in `sudo:root`. The hop
/// must neither use that directory nor run what is swapped in.
fn swap_race(agent: &Path, args: &[&str], chain: &str) {
    require_accounts();
    require_account(ATTACKER);
    require("runuser");
    require("sudo");
    require("python3");
    let target = "root";
    let uid = uid_of(target);
    let hash = sha256(agent);
    let own_cache = home_of(target).join(".cache/mitogen-fakessh");
    let _ = std::fs::remove_file(own_cache.join(&hash));
    let _ = std::fs::remove_file(own_cache.join(format!(".ok-{hash}")));
    let mut attack = Attack::new();
    let shm = PathBuf::from(format!("/dev/shm/mitogen-fakessh-{uid}"));
    attack.clear(&shm);
    as_attacker(&format!(
        "mkdir -m 755 {shm}; printf '%s' '{evil}' > {shm}/evil; chmod 755 {shm}/evil; : > {shm}/.ok-{hash}",
        shm = shm.display(),
        evil = attack.evil,
    ));
    let genuine = shm.join(&hash);
    std::fs::copy(agent, &genuine).unwrap();
    let attacker = uid_of(ATTACKER);
    std::os::unix::fs::chown(&genuine, Some(attacker), Some(attacker)).unwrap();
    std::fs::set_permissions(&genuine, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(sha256(&genuine), hash);

    let work = attack._marker_dir.path().to_path_buf();
    let swapper = work.join("swapper.py");
    std::fs::write(&swapper, SWAPPER).unwrap();
    let ready = work.join("swapper-ready");
    let mut watcher = Command::new("runuser")
        .args(["-u", ATTACKER, "--", "python3"])
        .arg(&swapper)
        .arg(&genuine)
        .arg(shm.join("evil"))
        .arg(&ready)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the attacker's watcher did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let mut argv = args.to_vec();
    argv.extend(["--to", chain, "--", "ssh", "h", "id -u"]);
    let out = fakessh(&argv);
    let _ = watcher.kill();
    let _ = watcher.wait();
    attack.assert_nothing_ran();
    out.assert_no_panic().expect_code(0);
    assert_eq!(out.stdout_text(), format!("{uid}\n"));
}
