//! Which host a name reaches, and how: on-demand mode, Include and Match in
//! the ssh config, the client's own `-o` options, ProxyCommand, ProxyJump, a
//! second hop through the first agent, a refused connection.

use super::*;

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn on_demand_mode_connects_hostnames_from_the_ssh_config() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    let dst = tmp.path().join("dst");
    // No --to, no --host: "target" is ssh:target, resolved through the config.
    fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "rsync",
        "-a",
        &format!("{}/", src.display()),
        &format!("target:{}/", dst.display()),
    ])
    .expect_code(0);
    assert_same_tree(&src, &dst);
    // A name the config does not know is tried as a real host name: here it
    // does not resolve, and the error names the hop.
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "no-such-host.invalid",
        "true",
    ]);
    out.expect_error(255, "ssh:no-such-host.invalid");
}

#[test]
fn refused_connection_names_the_hop() {
    let port = common::sshd::free_port();
    let out = fakessh(&["--to", &format!("ssh:root@127.0.0.1:{port}"), "--", "true"]);
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains(&format!("ssh:root@127.0.0.1:{port}")), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn second_ssh_hop_goes_through_the_first_agent() {
    require_sshd();
    let sshd = Sshd::start();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:target,ssh:target",
        "--",
        "ssh",
        "h",
        "echo $PPID",
    ]);
    out.expect_code(0);
    // Two connections: the first from the host, the second from its agent.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn hostnames_from_included_files_and_match_blocks() {
    require_sshd();
    let sshd = Sshd::start();
    // The alias is defined only in an included file, and its port only by a
    // `Match` on the HostName obtained so far (and on this machine's
    // loopback interface being up); a later catch-all names a
    // port nobody listens on. Skipping either the Include or the Match
    // fails the connection.
    let conf_d = sshd.path("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    let block: String = sshd
        .config_block("included", "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("Port "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(conf_d.join("10-included.conf"), block).unwrap();
    let cfg = format!(
        "Include {}/*.conf\nMatch host {} originalhost included localnetwork 127.0.0.0/8\n  Port {}\nHost *\n  Port 1\n",
        conf_d.display(),
        sshd.addr,
        sshd.port
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "included",
        "echo from-the-included-host",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "from-the-included-host\n");
    // A broken Match line is a one-line error naming the file and line.
    std::fs::write(sshd.path("ssh_config"), "Match hots x\n").unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "ssh",
        "included",
        "true",
    ]);
    assert_ne!(out.code(), 0);
    out.expect_stderr("line 1: unsupported Match attribute \"hots\"");
}

/// `rsync -e "ssh -i KEY -o ..."` in on-demand mode: the client's own
/// options configure the connection the host opens for it, ahead of the
/// ssh config, as they would for OpenSSH.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn the_clients_ssh_options_configure_an_on_demand_connection() {
    require_sshd();
    require("rsync");
    let sshd = Sshd::start();
    // The config names the host, but neither a key nor its known_hosts.
    let cfg = format!(
        "Host target\n  HostName {}\n  Port {}\n  User root\n  IdentitiesOnly yes\n  \
         IdentityFile /nonexistent/key\n  GlobalKnownHostsFile /dev/null\n  \
         UserKnownHostsFile /nonexistent/known_hosts\n",
        sshd.addr, sshd.port
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&["--ssh-config", &sshd.ssh_config(), "ssh", "target", "true"]);
    out.expect_error(255, "not in known_hosts");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 1 << 20);
    let dst = tmp.path().join("dst");
    // -i names the key relative to the client's directory.
    let rsh = format!(
        "ssh -i user_key -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        sshd.path("known_hosts").display()
    );
    let mut cmd = Command::new(bin());
    cmd.current_dir(sshd.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "rsync",
            "-a",
            "-e",
            &rsh,
        ])
        .arg(format!("{}/", src.display()))
        .arg(format!("target:{}/", dst.display()));
    run_with(cmd, b"", Duration::from_secs(120)).expect_code(0);
    assert_same_tree(&src, &dst);
    // -F: the client's own config file, in place of the host's, for a name
    // only that file knows (given relative to the client's directory), and
    // reached through a jump host only that file knows either.
    let client_config = format!(
        "{}{}",
        sshd.config_block("jump-in-F", ""),
        sshd.config_block("only-in-F", "  ProxyJump jump-in-F\n")
    );
    std::fs::write(sshd.path("client_config"), client_config).unwrap();
    let logins = sshd.accepted();
    let mut cmd = Command::new(bin());
    cmd.current_dir(sshd.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "--ssh-config",
            &sshd.ssh_config(),
            "ssh",
            "-F",
            "client_config",
        ])
        .args(["only-in-F", "echo named-by-F"]);
    let out = run_with(cmd, b"", Duration::from_secs(120));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "named-by-F\n");
    assert_eq!(sshd.accepted(), logins + 2, "{}", sshd.log());
    let out = fakessh(&["ssh", "-F", "/nonexistent/config", "x", "true"]);
    // The shim reads the file itself now, and says what OpenSSH says.
    out.expect_error(
        255,
        "Can't open user config file /nonexistent/config: No such file or directory",
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn proxy_command_from_the_ssh_config() {
    require_sshd();
    require("ssh");
    let sshd = Sshd::start();
    // OpenSSH's own client, reading the same file, is the proxy: `-W`
    // forwards its stdin and stdout to the target's port.
    let ssh = which("ssh").unwrap();
    let cfg = format!(
        "{}{}{}{}",
        sshd.config_block("target", ""),
        sshd.config_block(
            "behind",
            &format!(
                "  ProxyCommand {} -F {} -o BatchMode=yes -W %h:%p target\n",
                ssh.display(),
                sshd.ssh_config()
            )
        ),
        sshd.config_block("silent", "  ProxyCommand sleep 60\n  ConnectTimeout 2\n"),
        sshd.config_block("failing", "  ProxyCommand false\n"),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let via = |alias: &str| {
        fakessh(&[
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            &format!("ssh:{alias}"),
            "--",
            "ssh",
            "h",
            "echo proxied",
        ])
    };
    let out = via("behind");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "proxied\n");
    // Two logins: OpenSSH's for the proxy, then ours through it.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
    // A proxy that never speaks is given up on after ConnectTimeout; one
    // that dies at once fails at once. Both name the hop.
    via("silent").expect_error(255, "ssh:silent: no ssh handshake from 127.0.0.1 within 2s");
    via("failing").expect_error(255, "ssh:failing: ssh handshake failed");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn proxy_jump_from_the_ssh_config() {
    require_sshd();
    let sshd = Sshd::start();
    // The jump host is the same sshd under another name; the target is only
    // named through it (direct-tcpip), like OpenSSH's -J.
    let cfg = format!(
        "{}{}",
        sshd.config_block("jump", ""),
        sshd.config_block("behind", "  ProxyJump jump\n")
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:behind",
        "--",
        "ssh",
        "h",
        "echo jumped",
    ]);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "jumped\n");
    // Two logins: the jump host and, through it, the target.
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
}
