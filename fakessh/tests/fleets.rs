//! Fleets: one pattern and template for many hostnames, a config file with
//! patterns and a default that the command line overrides, `--explain`,
//! and one broken host among twenty failing alone; against the real sshd,
//! logging in as mfs-deploy, whose sudo demands a tty and a password.
#![cfg(feature = "host")]

mod common;

use common::sshd::{Sshd, require_sshd};
use common::*;

/// sshd taking many handshakes at once (its default MaxStartups drops
/// concurrent ones beyond 10; real fleets have one sshd per host), and an
/// ssh config where every `hN` is it, as mfs-deploy; `extra` goes first.
fn fleet_sshd(extra: &str) -> (Sshd, String) {
    require_sshd();
    require_accounts();
    let sshd = Sshd::start_with(&["MaxStartups=200"]);
    let cfg = sshd.path("fleet_config");
    std::fs::write(
        &cfg,
        format!(
            "{extra}{}",
            sshd.config_block_for("h* web* db* mail", "mfs-deploy", "")
        ),
    )
    .unwrap();
    (sshd, cfg.display().to_string())
}

#[test]
#[ignore = "needs root, sshd, rsync, make and the test accounts (run ./tests/run)"]
fn twenty_hosts_through_one_pattern_with_make() {
    require("make");
    require("rsync");
    require("scp");
    let (sshd, cfg) = fleet_sshd("");
    let tmp = tempfile::tempdir().unwrap();
    let payload = tmp.path().join("payload");
    write_random_file(&payload, 200_000, 3);
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let makefile = tmp.path().join("Makefile");
    std::fs::write(
        &makefile,
        format!(
            "HOSTS := $(shell seq -f 'h%g' 1 20)\n\
             all: $(HOSTS:%=scp-%) $(HOSTS:%=rsync-%)\n\
             scp-%:\n\tscp -q {p} $*:{d}/$*-scp\n\
             rsync-%:\n\trsync -a {p} $*:{d}/$*-rsync\n",
            p = payload.display(),
            d = dest.display()
        ),
    )
    .unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &cfg,
        "--password-file",
        &password_file(tmp.path(), DEPLOY_PASSWORD),
        "--host",
        "h*=ssh:%h,sudo:root",
        "--",
        "make",
        "-s",
        "-j8",
        "-C",
        &tmp.path().display().to_string(),
    ]);
    out.assert_no_panic().expect_code(0);
    let sent = std::fs::read(&payload).unwrap();
    for i in 1..=20 {
        for how in ["scp", "rsync"] {
            let file = dest.join(format!("h{i}-{how}"));
            let meta = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), out.stderr_text()));
            use std::os::unix::fs::MetadataExt;
            assert_eq!(meta.uid(), 0, "{} is not root's: no sudo", file.display());
            assert_eq!(std::fs::read(&file).unwrap(), sent);
        }
    }
    assert_eq!(sshd.accepted(), 20, "one connection per hostname");
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn a_config_file_with_patterns_and_a_default_overridden_on_the_command_line() {
    let (_sshd, cfg) = fleet_sshd("");
    let tmp = tempfile::tempdir().unwrap();
    let team = tmp.path().join("team.toml");
    std::fs::write(
        &team,
        format!(
            "ssh-config = {cfg:?}\n\
             password-file = {:?}\n\
             to = \"ssh:%h\"\n\
             \n\
             [[host]]\n\
             pattern = \"web*\"\n\
             chain = \"ssh:%h,sudo:mfs-webapp\"\n\
             \n\
             [[host]]\n\
             pattern = \"db*\"\n\
             chain = \"ssh:%h,sudo:root\"\n",
            password_file(tmp.path(), DEPLOY_PASSWORD)
        ),
    )
    .unwrap();
    let team = team.display().to_string();
    let out = fakessh(&[
        "--config",
        &team,
        "--host",
        "web2=ssh:%h",
        "--",
        "sh",
        "-c",
        "for h in web1 web2 db1 mail; do ssh $h id -un; done",
    ]);
    out.assert_no_panic().expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "mfs-webapp\nmfs-deploy\nroot\nmfs-deploy\n"
    );
    let explain = |host: &str| {
        let out = fakessh(&[
            "--config",
            &team,
            "--host",
            "web2=ssh:%h",
            "--explain",
            host,
        ]);
        out.expect_code(0);
        out.stdout_text()
    };
    assert_eq!(
        explain("web1"),
        format!(
            "web1: ssh:web1,sudo:mfs-webapp\n  rule: host \"web*\" = \"ssh:%h,sudo:mfs-webapp\" ({team} line 6)\n"
        )
    );
    assert_eq!(
        explain("web2"),
        "web2: ssh:web2\n  rule: --host 'web2=ssh:%h' (command line)\n"
    );
    assert_eq!(
        explain("mail"),
        format!("mail: ssh:mail\n  rule: to = \"ssh:%h\" ({team} line 3)\n")
    );
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn one_broken_host_fails_alone() {
    // h13's port is closed; the other nineteen are fine.
    let (_sshd, cfg) = fleet_sshd("Host h13\n  Port 1\n\n");
    let tmp = tempfile::tempdir().unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &cfg,
        "--password-file",
        &password_file(tmp.path(), DEPLOY_PASSWORD),
        "--host",
        "h*=ssh:%h,sudo:root",
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 20); do (ssh h$i echo ok-h$i || echo failed-h$i) & done; wait",
    ]);
    out.assert_no_panic().expect_code(0);
    let mut lines: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    lines.sort();
    let mut want: Vec<String> = (1..=20)
        .map(|i| match i {
            13 => "failed-h13".to_string(),
            _ => format!("ok-h{i}"),
        })
        .collect();
    want.sort();
    assert_eq!(lines, want, "{}", out.stderr_text());
    out.expect_stderr("ssh:h13: ");
    for i in (1..=20).filter(|i| *i != 13) {
        assert!(
            !out.stderr_text().contains(&format!("ssh:h{i}: ")),
            "h{i} failed too:\n{}",
            out.stderr_text()
        );
    }
}

#[test]
fn bad_templates_and_config_files_fail_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    fakessh(&["--config", "none", "--host", "w*=ssh:%z", "--", "true"])
        .assert_no_panic()
        .expect_error(255, "--host w*: unknown token %z");
    fakessh(&["--config", "none", "--to", "ssh:%h%", "--", "true"])
        .expect_error(255, "a lone % at the end");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "to = \"local\"\n[[host]]\npattern = \"x\"\nchian = \"local\"\n",
    )
    .unwrap();
    fakessh(&["--config", &bad.display().to_string(), "--", "true"])
        .assert_no_panic()
        .expect_error(
            255,
            &format!("{} line 4: unknown field `chian`", bad.display()),
        );
    fakessh(&["--config", "/nonexistent/team.toml", "--", "true"])
        .expect_error(255, "/nonexistent/team.toml: No such file");
    // A key's bad value: one line, naming the file, the line and the key.
    std::fs::write(&bad, "to = \"local\"\n\nagent = [\"no-platform\"]\n").unwrap();
    let out = fakessh(&["--config", &bad.display().to_string(), "--", "true"]);
    out.assert_no_panic().expect_error(
        255,
        &format!(
            "{} line 3: agent: invalid value 'no-platform'",
            bad.display()
        ),
    );
    assert_eq!(
        out.stderr_text().lines().count(),
        1,
        "{}",
        out.stderr_text()
    );
    // A key is its flag: the same chain, told apart only by where it was written.
    std::fs::write(&bad, "to = \"ssh:deploy@%h,sudo:root\"\n").unwrap();
    let by_key = fakessh(&["--config", &bad.display().to_string(), "--explain", "db1"]);
    let by_flag = fakessh(&[
        "--config",
        "none",
        "--to",
        "ssh:deploy@%h,sudo:root",
        "--explain",
        "db1",
    ]);
    assert_eq!(
        by_key.stdout_text().lines().next(),
        by_flag.stdout_text().lines().next()
    );
    assert_eq!(
        by_key.stdout_text().lines().next(),
        Some("db1: ssh:deploy@db1,sudo:root")
    );
    // A pattern that matches nothing falls through to ssh:NAME.
    let out = fakessh(&[
        "--config",
        "none",
        "--host",
        "web*=local",
        "--explain",
        "db1",
    ]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "db1: ssh:db1\n  rule: none matches; reached on demand as ssh:[USER@]HOST[:PORT]\n"
    );
}
