//! Session semantics of the ssh shim on a `local` context, as OpenSSH's
//! client behaves: exit status, signals, separate stderr, EOF, concurrency,
//! flow control, argv errors.
#![cfg(feature = "host")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn exit_status_is_the_remote_commands() {
    local_sh(r#"ssh h "exit 7"; echo $?"#).expect_code(0);
    assert_eq!(local_sh(r#"ssh h "exit 7"; echo $?"#).stdout_text(), "7\n");
    // The wrapped command's own status is mitogen-fakessh's.
    local_sh("ssh h true && exit 3").expect_code(3);
}

#[test]
fn death_by_signal_gives_255() {
    let out = local_sh(r#"ssh h 'kill -9 $$'; echo $?"#);
    assert_eq!(out.stdout_text(), "255\n");
    let out = local_sh(r#"ssh h 'kill -TERM $$'; echo $?"#);
    assert_eq!(out.stdout_text(), "255\n");
}

#[test]
fn stderr_arrives_on_stderr_only() {
    let out = local_sh("ssh h 'echo to-out; echo to-err >&2'");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "to-out\n");
    assert!(
        out.stderr_text().contains("to-err"),
        "stderr: {}",
        out.stderr_text()
    );
    assert!(!out.stdout_text().contains("to-err"));
}

#[test]
fn stdin_eof_half_closes_and_output_still_arrives() {
    let out = local_sh("printf abc | ssh h wc -c");
    assert_eq!(out.stdout_text().trim(), "3");
    // Output produced after stdin EOF is still delivered.
    let out = local_sh("printf abc | ssh h 'cat >/dev/null; sleep 0.2; echo late'");
    assert_eq!(out.stdout_text(), "late\n");
    // -n: stdin is /dev/null even when ours has data.
    let out = local_sh("printf abc | ssh -n h 'wc -c'");
    assert_eq!(out.stdout_text().trim(), "0");
}

#[test]
fn commands_run_like_sshd_runs_them() {
    let home = std::env::var("HOME").unwrap_or_default();
    let out =
        local_sh(r#"ssh h 'echo "$USER|$LOGNAME|$HOME|$SHELL"; pwd; echo "${SECRET_VAR:-unset}"'"#);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout_text().leak().lines().collect();
    let user = nix_user();
    assert!(
        lines[0].starts_with(&format!("{user}|{user}|")),
        "{lines:?}"
    );
    assert_eq!(
        std::path::Path::new(lines[1]),
        std::path::Path::new(&lines[0].split('|').nth(2).unwrap())
    );
    // The host's environment does not leak into the session.
    assert_eq!(lines[2], "unset");
    let _ = home;
    // Words are joined by single spaces and parsed by the remote shell.
    let out = local_sh(r#"ssh h echo 'a  b' '$((6*7))'"#);
    assert_eq!(out.stdout_text(), "a b 42\n");
}

fn nix_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn thirty_two_concurrent_sessions() {
    let out =
        local_sh(r#"seq 32 | xargs -P 32 -I{} ssh h 'sleep 0.1; echo out-{}; echo err-{} >&2'"#);
    out.expect_code(0);
    let mut got: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    got.sort();
    let mut want: Vec<String> = (1..=32).map(|i| format!("out-{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    for i in 1..=32 {
        assert!(out.stderr_text().contains(&format!("err-{i}\n")));
    }
}

#[test]
fn sequential_sessions_reuse_the_context() {
    // 50 sessions, one agent: every `ssh` reports the same agent's parent pid.
    let out =
        local_sh("for i in $(seq 50); do ssh h 'echo $PPID' || exit 1; done | sort -u | wc -l");
    out.expect_code(0);
    assert_eq!(out.stdout_text().trim(), "1");
}

/// Flow control: a 1 GiB stream through the host keeps its peak RSS small.
#[test]
fn one_gib_stream_keeps_host_memory_bounded() {
    let script = "head -c 1073741824 /dev/zero | ssh h 'wc -c'; grep VmHWM /proc/$PPID/status";
    let out = local_sh(script);
    out.expect_code(0);
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim), Some("1073741824"));
    assert_host_peak_under_64_mib(lines.next(), &text);
}

/// Check the host's `VmHWM:` line (printed by the script) against 64 MiB.
fn assert_host_peak_under_64_mib(line: Option<&str>, text: &str) {
    let hwm_kb: u64 = line
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {text:?}"));
    eprintln!("host peak RSS: {hwm_kb} kB");
    assert!(
        hwm_kb < 64 * 1024,
        "host peak RSS {hwm_kb} kB is not under 64 MiB"
    );
}

/// Many sessions streaming at once into one context: their data waits in
/// the clients' pipes (which the host reads itself since the shims hand them
/// over), not in the host's queues. Before the router paced
/// bulk data, 64 sessions × 16 MiB held about 135 MiB in the host's queue.
#[test]
fn sixty_four_concurrent_uploads_keep_host_memory_bounded() {
    let script = "seq 64 | xargs -P 64 -I{} sh -c 'head -c 16777216 /dev/zero | ssh h \"wc -c\"' | sort | uniq -c; grep VmHWM /proc/$PPID/status";
    let out = local_sh(script);
    out.expect_code(0);
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(
        lines
            .next()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>),
        Some(vec!["64", "16777216"]),
        "every session must deliver all its bytes: {text:?}"
    );
    assert_host_peak_under_64_mib(lines.next(), &text);
}

#[test]
fn download_of_a_large_stream_is_complete() {
    let out = local_sh("ssh h 'head -c 300000000 /dev/zero' | wc -c");
    assert_eq!(out.stdout_text().trim(), "300000000");
}

#[test]
fn reader_going_away_stops_the_remote_writer() {
    // `yes` must die of SIGPIPE once `head` has what it wants; no hang.
    let out = local_sh("ssh h yes | head -n 3");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "y\ny\ny\n");
}

#[test]
fn unknown_option_and_missing_host_give_usage_and_255() {
    let out = local_sh("ssh -Z h true; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert!(out.stderr_text().contains("unknown option -- Z"));
    assert!(out.stderr_text().contains("usage: ssh"));
    let out = local_sh("ssh; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert!(out.stderr_text().contains("usage: ssh"));
    let out = local_sh("ssh -p; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert!(
        out.stderr_text()
            .contains("option requires an argument -- p")
    );
    // A malformed forward: OpenSSH's message, no usage text.
    let out = local_sh("ssh -L 8080:x h true; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert_eq!(
        out.stderr_text(),
        "Bad local forwarding specification '8080:x'\n"
    );
    // A remote SOCKS proxy (valid for OpenSSH): refused by name.
    let out = local_sh("ssh -R 8080 h true; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert_eq!(
        out.stderr_text(),
        "ssh: remote dynamic forwarding (-R 8080) is not supported by mitogen-fakessh\n"
    );
    let out = local_sh("ssh -w 0:0 h true; echo rc=$?");
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert!(
        out.stderr_text().contains("not supported"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn options_after_the_host_and_command_words_that_look_like_options() {
    let out = local_sh("ssh -p 2222 -o SendEnv=X -vT h -l nobody echo --server -e.LsfxCIvu . /x");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "--server -e.LsfxCIvu . /x\n");
}

#[test]
fn print_config_answers_gits_probe() {
    let out = local_sh("ssh -G -o SendEnv=GIT_PROTOCOL -p 2222 git@example </dev/null");
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(text.contains("user git\n"), "{text}");
    assert!(text.contains("hostname example\n"), "{text}");
    assert!(text.contains("port 2222\n"), "{text}");
}

#[test]
fn git_protocol_is_forwarded_and_other_env_is_not() {
    let out = local_sh(
        "GIT_PROTOCOL=version=2 OTHER=x ssh -o SendEnv=GIT_PROTOCOL -o SendEnv=OTHER h 'echo \"$GIT_PROTOCOL|${OTHER:-unset}\"'",
    );
    assert_eq!(out.stdout_text(), "version=2|unset\n");
}

#[test]
fn two_local_hops_route_through_the_first_agent() {
    let out = fakessh(&[
        "--to",
        "local,local",
        "--",
        "sh",
        "-c",
        "ssh h 'echo $PPID'; ssh h 'echo done'",
    ]);
    out.expect_code(0);
    assert!(out.stdout_text().ends_with("done\n"));
}

#[test]
fn host_mapping_selects_chains_by_hostname() {
    let out = fakessh(&[
        "--host",
        "a=local",
        "--host",
        "b=local,local",
        "--",
        "sh",
        "-c",
        "ssh a 'echo $PPID' > /dev/null && ssh b 'echo b-ok'",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "b-ok\n");
    // A hostname with no mapping and no --to needs an ssh hop.
    let out = fakessh(&[
        "--host",
        "a=local",
        "--",
        "sh",
        "-c",
        "ssh zz true; echo rc=$?",
    ]);
    assert!(out.stdout_text().ends_with("rc=255\n"));
    assert!(
        out.stderr_text().contains("ssh:zz"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text()
            .contains("hint: no rule matches host 'zz' (patterns: a)")
            && out.stderr_text().contains("--host 'zz=CHAIN'"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn host_cli_errors_exit_255_before_running_anything() {
    let out = fakessh(&[
        "--to",
        "bogus:x",
        "--",
        "touch",
        "/nonexistent-should-not-run",
    ]);
    out.expect_code(255);
    assert!(
        out.stderr_text().contains("unknown hop"),
        "{}",
        out.stderr_text()
    );
    let out = fakessh(&["--to", "local", "--", "definitely-not-a-command-xyz"]);
    out.expect_code(255);
    assert!(out.stderr_text().contains("command not found"));
    fakessh(&["--bogus-flag", "true"]).expect_code(255);
    fakessh(&["--to", "local"]).expect_code(255);
    let help = fakessh(&["--help"]);
    help.expect_code(0);
    assert!(help.stdout_text().contains("Examples:"));
    assert!(
        fakessh(&["--version"])
            .stdout_text()
            .starts_with("mitogen-fakessh ")
    );
}

#[test]
fn shim_outside_the_host_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("ssh");
    std::os::unix::fs::symlink(bin(), &ssh).unwrap();
    let mut cmd = Command::new(&ssh);
    cmd.args(["h", "true"]).env_remove("MITOGEN_FAKESSH_FD");
    let out = run_with(cmd, b"", Duration::from_secs(20));
    out.expect_code(255);
    assert!(
        out.stderr_text()
            .contains("not running under mitogen-fakessh")
    );
    // A wrong fd number is refused, not trusted.
    let mut cmd = Command::new(&ssh);
    cmd.args(["h", "true"]).env("MITOGEN_FAKESSH_FD", "1");
    run_with(cmd, b"", Duration::from_secs(20)).expect_code(255);
}

#[test]
fn a_caller_that_closes_inherited_descriptors_still_reaches_the_host() {
    // Python's subprocess closes every descriptor but 0-2 by default, so the
    // shim's inherited control socket is gone; it falls back to the host's
    // socket in the 0700 shim directory.
    require("python3");
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "python3",
        "-c",
        "import subprocess; r = subprocess.run(['ssh', 'h', 'echo via-fallback'], \
         capture_output=True, text=True); print(r.returncode, r.stdout.strip(), r.stderr.strip())",
    ]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "0 via-fallback \n",
        "{}",
        out.stderr_text()
    );
}

#[test]
fn exit_of_the_wrapped_command_by_signal_is_reported_like_a_shell() {
    let out = local_sh("kill -TERM $$");
    out.expect_code(128 + 15);
}

#[test]
fn frames_are_traced_at_vvv_and_quiet_is_quiet() {
    let out = fakessh(&["-vvv", "--to", "local", "--", "ssh", "h", "true"]);
    out.expect_code(0);
    assert!(
        out.stderr_text().contains("frame 0->1 handle 111"),
        "{}",
        out.stderr_text()
    );
    assert!(
        out.stderr_text().contains("mitogen-fakessh[local]: debug:"),
        "agent logs reach the host's stderr"
    );
    let out = fakessh(&[
        "-q",
        "--to",
        "local",
        "--",
        "sh",
        "-c",
        "ssh h 'echo out; exit 3'",
    ]);
    out.expect_code(3);
    assert_eq!(out.stderr_text(), "");
}

#[test]
fn shell_completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = fakessh(&["completions", shell]);
        out.expect_code(0);
        assert!(out.stdout_text().contains("mitogen-fakessh"), "{shell}");
        assert!(out.stdout_text().contains("password-file"), "{shell}");
    }
    // A usage error, like every other one: 255.
    fakessh(&["completions", "tcsh"]).expect_code(255);
    assert!(
        fakessh(&["--help"])
            .stdout_text()
            .contains("completions bash|zsh|fish")
    );
}
