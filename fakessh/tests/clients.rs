//! Unmodified clients inside `mitogen-fakessh -- COMMAND`: scp in both
//! protocols, scp -3 between two contexts, sftp batches, git with protocol
//! v2, make -j8, and signals reaching the remote command.
#![cfg(feature = "host")]

mod common;

use common::*;

fn local(args: &[&str]) -> Outcome {
    let mut all = vec!["--to", "local", "--"];
    all.extend_from_slice(args);
    fakessh(&all)
}

#[test]
fn scp_both_protocols_with_spaces_in_paths() {
    require("scp");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source file");
    write_random_file(&src, 3 << 20, 5);
    let dir = tmp.path().join("dest dir");
    std::fs::create_dir(&dir).unwrap();
    let s = src.display().to_string();
    let d = dir.display().to_string();
    // SFTP mode (the default): paths are SFTP protocol strings.
    local(&["scp", &s, &format!("h:{d}/up sftp")]).expect_code(0);
    local(&["scp", &format!("h:{d}/up sftp"), &format!("{d}/down sftp")]).expect_code(0);
    // Legacy mode: the remote path goes through the remote shell, so it is
    // quoted for it, as with OpenSSH (whose scp then needs -T to accept the
    // unquoted name coming back).
    local(&["scp", "-O", &s, &format!("h:'{d}/up legacy'")]).expect_code(0);
    local(&[
        "scp",
        "-O",
        "-T",
        "-p",
        &format!("h:'{d}/up legacy'"),
        &format!("{d}/down legacy"),
    ])
    .expect_code(0);
    let want = std::fs::read(&src).unwrap();
    for name in ["up sftp", "down sftp", "up legacy", "down legacy"] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), want, "{name}");
    }
    // -r and a missing source: scp's own error and exit status come through.
    let out = local(&["scp", "-r", &format!("h:{d}/missing"), &d]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr_text().contains("missing"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn scp_dash_3_between_two_mapped_hosts() {
    require("scp");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("a.bin");
    write_random_file(&src, 1 << 20, 9);
    let dst = tmp.path().join("b.bin");
    let out = fakessh(&[
        "--host",
        "alpha=local",
        "--host",
        "beta=local,local",
        "--",
        "scp",
        "-3",
        &format!("alpha:{}", src.display()),
        &format!("beta:{}", dst.display()),
    ]);
    out.expect_code(0);
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
}

#[test]
fn sftp_batch_with_every_common_command() {
    require("sftp");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    std::fs::write(tmp.path().join("local.txt"), "hello sftp\n").unwrap();
    let batch = tmp.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "mkdir {d}/newdir\nput {d}/local.txt {d}/newdir/put.txt\nrename {d}/newdir/put.txt {d}/newdir/renamed.txt\n\
             ls {d}/newdir\nget {d}/newdir/renamed.txt {d}/fetched.txt\nrm {d}/newdir/renamed.txt\nrmdir {d}/newdir\n"
        ),
    )
    .unwrap();
    let out = local(&["sftp", "-b", &batch.display().to_string(), "h"]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("renamed.txt"),
        "{}",
        out.stdout_text()
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("fetched.txt")).unwrap(),
        "hello sftp\n"
    );
    assert!(!tmp.path().join("newdir").exists());
}

#[test]
fn git_clone_push_fetch_with_protocol_v2() {
    require("git");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("it's repo.git");
    let st = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(st.success());
    let work = tmp.path().join("work");
    let again = tmp.path().join("again");
    let script = format!(
        r#"set -e
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
git clone -q "h:{repo}" "{work}"
cd "{work}"
echo one > file && git add file && git commit -q -m one
git push -q origin HEAD:main
cd ..
GIT_TRACE_PACKET=1 git -c protocol.version=2 clone -q -b main "ssh://h{repo}" "{again}" 2>"{trace}"
cd "{again}" && git fetch -q && git log --format=%s"#,
        repo = repo.display(),
        work = work.display(),
        again = again.display(),
        trace = tmp.path().join("trace").display(),
    );
    let out = local(&["sh", "-c", &script]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "one\n");
    let trace = std::fs::read_to_string(tmp.path().join("trace")).unwrap();
    assert!(
        trace.contains("version 2"),
        "protocol v2 was not negotiated:\n{trace}"
    );
}

#[test]
fn make_j8_with_recipes_that_call_ssh_and_scp() {
    require("make");
    require("scp");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    let mut makefile = String::from("all:");
    for i in 0..24 {
        makefile.push_str(&format!(" t{i}"));
    }
    makefile.push('\n');
    for i in 0..24 {
        if i % 2 == 0 {
            makefile.push_str(&format!("t{i}:\n\tssh web 'echo {i} > {d}/out{i}'\n"));
        } else {
            makefile.push_str(&format!(
                "t{i}:\n\techo {i} > {d}/in{i} && scp -q {d}/in{i} web:{d}/out{i}\n"
            ));
        }
    }
    std::fs::write(tmp.path().join("Makefile"), makefile).unwrap();
    let out = fakessh(&["--host", "web=local", "--", "make", "-s", "-j8", "-C", &d]);
    out.expect_code(0);
    for i in 0..24 {
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(format!("out{i}"))).unwrap(),
            format!("{i}\n")
        );
    }
}

#[test]
fn sigint_to_the_shim_reaches_the_remote_command() {
    require("pgrep");
    let marker = 20000 + std::process::id() % 10000;
    let script = format!(
        "ssh h 'trap \"echo got-int; exit 3\" INT; sleep {marker} & wait' & pid=$!; \
         for i in $(seq 100); do pgrep -fx 'sleep {marker}' >/dev/null && break; sleep 0.1; done; \
         kill -INT $pid; wait $pid; echo shim=$?; sleep 0.5; pgrep -fx 'sleep {marker}' || echo gone"
    );
    let out = local(&["sh", "-c", &script]);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(text.contains("shim=130"), "{text}");
    assert!(text.ends_with("gone\n"), "{text}");
}

#[test]
fn version_and_quiet_flags() {
    let out = local(&["ssh", "-V"]);
    out.expect_code(0);
    assert!(
        out.stderr_text().contains("mitogen-fakessh"),
        "{}",
        out.stderr_text()
    );
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let out = local(&["ssh", "-v", "-E", &log.display().to_string(), "h", "true"]);
    out.expect_code(0);
    assert!(std::fs::read_to_string(&log).unwrap().contains("debug1:"));
    assert!(!out.stderr_text().contains("debug1:"));
}

#[test]
fn tty_sessions_through_a_real_terminal() {
    require("script");
    // `script` gives the wrapped command a terminal, as a user's shell would.
    // Its stdin stays open while the command runs, as at a real terminal
    // (a closed stdin makes `script` send EOF into the session early).
    let under_tty = |inner: &str| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 4 | script -qec \"{} --to local -- {inner}\" /dev/null",
            bin()
        ));
        let out = run_with(cmd, b"", std::time::Duration::from_secs(60));
        out.stdout_text().replace('\r', "")
    };
    let text = under_tty("ssh -t h 'tty; stty size'");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().count() == 2
            && l.split_whitespace().all(|w| w.parse::<u16>().is_ok())),
        "{text}"
    );
    // Without -t there is no pty, even with a terminal here.
    let text = under_tty("ssh h tty");
    assert!(text.contains("not a tty"), "{text}");
    // No command: an interactive login shell on a pty; its exit status returns.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!(
        "(sleep 1; printf 'echo hello-$((40+2)); tty; exit 5\\r'; sleep 3) | script -qec '{} --to local -- sh -c \"ssh h; echo shim=\\$?\"' /dev/null",
        bin()
    ));
    let out = run_with(cmd, b"", std::time::Duration::from_secs(60));
    let text = out.stdout_text().replace('\r', "");
    assert!(text.contains("hello-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("shim=5"), "{text}");
}
