//! The command line (issue 26): global options before a subcommand, `--`
//! before a program named like one, `--help` listing the subcommands, no
//! arguments pointing at them, and subcommand usage lines naming the
//! program. Against the real executable, with a real daemon and a local
//! agent.
#![cfg(feature = "host")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const SUBCOMMANDS: [&str; 6] = ["start", "exec", "status", "stop", "agents", "completions"];

/// `mitogen-fakessh ARGS` in `dir`'s world: its TMPDIR and config home, no
/// runtime directory or daemon inherited from the developer's shell.
fn in_dir(dir: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    isolate(&mut cmd, dir);
    run_with(cmd, b"", Duration::from_secs(120))
}

fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.env("TMPDIR", dir)
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("MITOGEN_FAKESSH_SOCK")
        .env_remove("SSH_AUTH_SOCK");
}

/// `sh -c SCRIPT` with `B` naming our executable.
fn sh(dir: &Path, script: &str) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).env("B", bin());
    isolate(&mut cmd, dir);
    run_with(cmd, b"", Duration::from_secs(120))
}

/// The daemon whose socket `start` printed; stopped at the end of the test
/// whatever happened.
struct Daemon(String);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["stop", "--socket", &self.0])
            .output();
    }
}

/// The value `start`'s sh code gives MITOGEN_FAKESSH_SOCK.
fn printed_socket(code: &str) -> String {
    let line = code
        .lines()
        .find_map(|l| l.strip_prefix("MITOGEN_FAKESSH_SOCK="))
        .unwrap_or_else(|| panic!("no MITOGEN_FAKESSH_SOCK in:\n{code}"));
    let value = line.split(';').next().unwrap();
    value.trim_matches('\'').to_string()
}

fn refuse_command_not_found(out: &Outcome) {
    assert!(
        !out.stderr_text().contains("command not found"),
        "a subcommand ran as a program:\n{}",
        out.stderr_text()
    );
}

#[test]
fn options_before_agents_apply_to_it() {
    let dir = tempfile::tempdir().unwrap();
    // 1: an agent of the build tree was found unusable (stale after a
    // source change), said on stderr; the list is printed all the same.
    let listed_anyway = |out: &Outcome| {
        refuse_command_not_found(out);
        assert!(matches!(out.code(), 0 | 1), "{}", out.stderr_text());
        assert!(
            out.stdout_text().starts_with("PLATFORM"),
            "{}",
            out.stdout_text()
        );
    };
    listed_anyway(&in_dir(dir.path(), &["-v", "agents"]));
    // An --agent before the subcommand is listed, as one after it is.
    let exe = std::fs::canonicalize(bin()).unwrap();
    let flag = format!("Linux testmachine={}", exe.display());
    let out = in_dir(
        dir.path(),
        &["--config", "none", "--agent", &flag, "agents"],
    );
    listed_anyway(&out);
    let listed = out.stdout_text();
    assert!(
        listed.lines().any(|l| l.starts_with("Linux testmachine")),
        "the --agent before agents is not listed:\n{listed}"
    );
    // The config file before it is read: a missing one fails, naming it.
    let out = in_dir(dir.path(), &["--config", "/nonexistent/mfs.toml", "agents"]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("/nonexistent/mfs.toml");
}

#[test]
fn options_before_start_status_and_stop_through_the_printed_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").unwrap();
    let ssh_config = ssh_config.display().to_string();
    let out = in_dir(
        dir.path(),
        &[
            "--ssh-config",
            &ssh_config,
            "--host",
            "p*=local",
            "start",
            "-s",
        ],
    );
    refuse_command_not_found(&out);
    out.expect_code(0);
    let code = out.stdout_text();
    let daemon = Daemon(printed_socket(&code));
    assert!(
        daemon.0.starts_with(&dir.path().display().to_string()),
        "the socket is not in TMPDIR: {}",
        daemon.0
    );
    // The --ssh-config before start is the daemon's.
    assert!(code.contains(&ssh_config), "start's code lacks it:\n{code}");
    std::fs::write(dir.path().join("start.sh"), &code).unwrap();
    // The shell that evaluated start's code: its ssh goes through the
    // daemon's --host rule (local), options before status and stop work.
    let out = sh(
        dir.path(),
        r#"eval "$(cat "$TMPDIR/start.sh")" || exit 9
           ssh pfoo 'echo via-daemon; id -un' || exit 10
           "$B" --config x status || exit 11
           "$B" -q --config x status --json || exit 12
           "$B" -v exec -- ssh pbar echo via-exec || exit 13
           eval "$("$B" -q stop)" || exit 14
           echo "after stop: ${MITOGEN_FAKESSH_SOCK:-unset}"
        "#,
    );
    refuse_command_not_found(&out);
    out.expect_code(0);
    let text = out.stdout_text();
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    assert!(text.contains(&format!("via-daemon\n{me}")), "{text}");
    assert!(text.contains("via-exec"), "{text}");
    // status lists the one local context both sessions used.
    assert!(
        text.lines().any(|l| l.starts_with("CONTEXT"))
            && text.lines().filter(|l| l.contains(" local ")).count() == 1,
        "status lists no local context:\n{text}"
    );
    assert!(text.contains("\"contexts\""), "no JSON status:\n{text}");
    assert!(text.contains("after stop: unset"), "{text}");
    assert!(!Path::new(&daemon.0).exists(), "stop left the socket");
}

#[test]
fn options_meant_for_a_run_or_given_twice_are_refused_before_a_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = in_dir(dir.path(), &["--grace", "5s", "start"]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("--grace is for a run");
    assert_eq!(out.stdout_text(), "", "a daemon started");
    let out = in_dir(dir.path(), &["--to", "local", "start", "--to", "local"]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("--to given both before and after start");
    assert_eq!(out.stdout_text(), "", "a daemon started");
    // A chain flag before a daemon client is said to have no effect.
    let out = in_dir(
        dir.path(),
        &["--to", "local", "status", "--socket", "/nonexistent/d.sock"],
    );
    assert_eq!(out.code(), 255);
    out.expect_stderr("--to has no effect on status");
}

#[test]
fn double_dash_runs_a_program_named_like_a_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    for name in SUBCOMMANDS {
        let program = bin_dir.join(name);
        std::fs::write(
            &program,
            format!("#!/bin/sh\necho \"program {name} ran: $*\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for name in SUBCOMMANDS {
        let mut cmd = Command::new(bin());
        cmd.args(["--to", "local", "--", name, "an-arg"])
            .env("PATH", &path);
        isolate(&mut cmd, dir.path());
        let out = run_with(cmd, b"", Duration::from_secs(60));
        out.expect_code(0);
        assert_eq!(out.stdout_text(), format!("program {name} ran: an-arg\n"));
    }
}

#[test]
fn help_lists_the_subcommands_one_line_each() {
    for flag in ["--help", "-h"] {
        let out = fakessh(&[flag]);
        out.expect_code(0);
        let help = out.stdout_text();
        let block: Vec<&str> = help
            .lines()
            .skip_while(|l| *l != "Subcommands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        let names: Vec<&str> = block
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(names, SUBCOMMANDS, "{flag}:\n{help}");
        for line in block {
            assert!(
                line.split_whitespace().count() > 2,
                "a subcommand without its line: {line:?}"
            );
        }
        assert!(help.contains("mitogen-fakessh -- start"), "{help}");
    }
}

#[test]
fn no_arguments_point_at_the_subcommands() {
    let out = fakessh(&[]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("start, exec, status, stop, agents, completions")
        .expect_stderr("--help")
        .expect_stderr("Usage: mitogen-fakessh");
    assert_eq!(out.stdout_text(), "");
}

#[test]
fn subcommand_usage_lines_name_the_program() {
    for name in SUBCOMMANDS {
        let out = fakessh(&[name, "--help"]);
        out.expect_code(0);
        let usage = format!("Usage: mitogen-fakessh {name} ");
        assert!(
            out.stdout_text().contains(&usage),
            "{name} --help lacks {usage:?}:\n{}",
            out.stdout_text()
        );
    }
    // An error's usage too, after global options.
    let out = fakessh(&["-v", "exec"]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("Usage: mitogen-fakessh exec ");
}

#[test]
fn completions_still_work_and_know_the_subcommands() {
    let out = fakessh(&["completions", "bash"]);
    out.expect_code(0);
    assert!(out.stdout_text().contains("mitogen-fakessh"));
    assert!(out.stdout_text().contains("status"));
    let out = fakessh(&["-q", "completions", "tcsh"]);
    assert_eq!(out.code(), 255);
    out.expect_stderr("unknown shell \"tcsh\"");
}
