//! `ssh -O check|exit|stop` answered as a ControlMaster would, through the
//! real host, about its context for the destination; the other `-O`
//! commands refused by name.
#![cfg(feature = "host")]

mod common;

use common::*;

/// Run `script` under `mitogen-fakessh --to local`.
fn under_host(script: &str) -> Outcome {
    let out = local_sh(script);
    out.assert_no_panic();
    out
}

#[test]
fn check_without_a_context_says_what_openssh_says() {
    // `--to local` connects its chain at start: end it first.
    let out = under_host("ssh -O exit h 2>/dev/null; ssh -O check h; echo rc=$?");
    out.expect_code(0)
        .expect_stderr("Control socket connect(local): No such file or directory");
    assert_eq!(out.stdout_text(), "rc=255\n");
    // Nothing was connected by asking.
    assert!(!out.stderr_text().contains("Master running"));
    assert!(!out.stderr_text().contains("lost"), "{}", out.stderr_text());
}

#[test]
fn check_reports_the_host_and_exit_ends_the_context() {
    // The host is the wrapped command's parent: its pid is the one printed.
    // The agent's pid is the parent of the remote shell.
    let script = r#"
        agent=$(ssh h 'echo $PPID') || exit 10
        ssh -O check h 2>check.txt; echo check=$?
        grep -qxF "Master running (pid=$PPID)$(printf '\r')" check.txt && echo pid-is-host
        ssh -O exit h; echo exit=$?
        # Gone, or a zombie the host reaps when it ends.
        alive() { case "$(ps -o stat= -p "$agent")" in ""|Z*) return 1;; esac; }
        i=0; while alive && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        alive && echo agent-alive || echo agent-gone
        ssh -O check h; echo after=$?
        ssh h 'echo reconnected'
    "#;
    let dir = tempfile::tempdir().unwrap();
    let script = format!("cd {} && {script}", dir.path().display());
    let out = under_host(&script);
    out.expect_code(0).expect_stderr("Exit request sent.\r\n");
    assert_eq!(
        out.stdout_text(),
        "check=0\npid-is-host\nexit=0\nagent-gone\nafter=255\nreconnected\n",
        "stderr:\n{}",
        out.stderr_text()
    );
}

#[test]
fn stop_ends_it_too_and_quiet_says_nothing() {
    let out = under_host(
        "ssh h true; ssh -q -O stop h; echo stop=$?; ssh -O check h; echo after=$?; \
         ssh h true; ssh -O stop h; echo again=$?",
    );
    out.expect_code(0)
        .expect_stderr("Stop listening request sent.\r\n");
    assert_eq!(out.stderr_text().matches("Stop listening").count(), 1);
    assert_eq!(out.stdout_text(), "stop=0\nafter=255\nagain=0\n");
}

#[test]
fn other_control_commands_are_refused_by_name() {
    for (args, named) in [
        ("-O forward -L 10022:localhost:22", "-O forward"),
        ("-O cancel -L 10022:localhost:22", "-O cancel"),
        ("-O proxy", "-O proxy"),
    ] {
        let out = under_host(&format!("ssh {args} h; echo rc=$?"));
        assert_eq!(out.stdout_text(), "rc=255\n");
        let err = out.stderr_text();
        let line = format!("ssh: {named} is not supported by mitogen-fakessh\n");
        assert!(err.contains(&line), "{args}: {err}");
    }
    let out = under_host("ssh -O bogus h; echo rc=$?");
    assert_eq!(out.stdout_text(), "rc=255\n");
    out.expect_stderr("Invalid multiplex command.");
}
