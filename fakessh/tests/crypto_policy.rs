//! The user's crypto policy against a real OpenSSH sshd: what was
//! negotiated is read from sshd's own log (`LogLevel DEBUG` logs
//! `kex: algorithm: ...` and `kex: client->server cipher: ...`), never from
//! our claim; a policy the server cannot meet fails with OpenSSH's words,
//! and the real `ssh` is run beside ours to compare.
#![cfg(feature = "host")]

mod common;
/// PubkeyAcceptedAlgorithms, RequiredRSASize, CASignatureAlgorithms.
#[path = "crypto_policy/keys.rs"]
mod keys;

use std::process::Command;
use std::time::Duration;

use common::sshd::{Sshd, require_sshd};
use common::*;

/// sshd logging every negotiation, with `options` (its own restrictions).
fn debug_sshd(options: &[&str]) -> Sshd {
    let mut all = vec!["LogLevel DEBUG"];
    all.extend_from_slice(options);
    Sshd::start_with(&all)
}

/// An ssh_config naming the server `target`, with `extra` lines.
fn client_config(sshd: &Sshd, extra: &str) -> String {
    std::fs::write(sshd.path("known_hosts"), sshd.host_key_line()).unwrap();
    let path = sshd.path("policy_config");
    std::fs::write(&path, sshd.config_block("target", extra)).unwrap();
    path.display().to_string()
}

/// `mitogen-fakessh --to ssh:target -- ssh h 'echo ran-remotely'`.
fn run_on_target(config: &str) -> Outcome {
    run_on_target_with(&[], config)
}

/// The same with `flags` first (`-v`); what ran is checked if it succeeded.
fn run_on_target_with(flags: &[&str], config: &str) -> Outcome {
    let mut args = flags.to_vec();
    args.extend([
        "--ssh-config",
        config,
        "--to",
        "ssh:target",
        "--",
        "ssh",
        "h",
        "echo ran-remotely",
    ]);
    let out = fakessh(&args);
    out.assert_no_panic();
    if out.code() == 0 {
        assert_eq!(out.stdout_text(), "ran-remotely\n");
    }
    out
}

/// The real OpenSSH client with the same configuration.
fn real_ssh(config: &str, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(args)
        .env_remove("SSH_AUTH_SOCK");
    run_with(cmd, b"", Duration::from_secs(60))
}

/// The lines of sshd's log that say what was negotiated.
fn negotiated(sshd: &Sshd) -> String {
    sshd.log()
        .lines()
        .filter(|l| l.contains("kex: algorithm:") || l.contains("cipher:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn the_config_policy_is_what_sshd_negotiates() {
    require_sshd();
    let sshd = debug_sshd(&[]);
    let config = client_config(
        &sshd,
        "  KexAlgorithms diffie-hellman-group14-sha256\n  Ciphers aes256-ctr\n  MACs hmac-sha2-256\n  HostKeyAlgorithms ssh-ed25519\n",
    );
    run_on_target(&config).expect_code(0);
    let log = negotiated(&sshd);
    assert!(
        log.contains("kex: algorithm: diffie-hellman-group14-sha256"),
        "sshd negotiated another key exchange:\n{log}"
    );
    assert!(
        log.contains("kex: client->server cipher: aes256-ctr MAC: hmac-sha2-256"),
        "sshd negotiated another cipher or MAC:\n{log}"
    );
    assert!(
        log.contains("kex: server->client cipher: aes256-ctr MAC: hmac-sha2-256"),
        "{log}"
    );
    assert!(!log.contains("curve25519"), "{log}");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn list_syntax_removes_and_prefers_as_openssh() {
    require_sshd();
    let sshd = debug_sshd(&[]);
    // `-` with wildcards removes every AEAD cipher and the curve25519 and
    // mlkem exchanges; `^` puts a MAC first.
    let config = client_config(
        &sshd,
        "  Ciphers -*gcm*,chacha20*\n  KexAlgorithms -curve25519*,mlkem*\n  MACs ^hmac-sha2-512\n",
    );
    run_on_target(&config).expect_code(0);
    let log = negotiated(&sshd);
    assert!(
        log.contains("kex: algorithm: ecdh-sha2-nistp256"),
        "the first exchange left is ecdh-sha2-nistp256:\n{log}"
    );
    assert!(
        log.contains("kex: client->server cipher: aes128-ctr MAC: hmac-sha2-512 "),
        "{log}"
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_server_outside_the_policy_is_refused_with_openssh_words() {
    require_sshd();
    let sshd = debug_sshd(&[
        "Ciphers aes256-ctr",
        "KexAlgorithms diffie-hellman-group14-sha256",
    ]);
    let config = client_config(&sshd, "  Ciphers aes128-ctr,aes128-gcm@openssh.com\n");
    let want = format!(
        "Unable to negotiate with 127.0.0.1 port {}: no matching cipher found. Their offer: aes256-ctr",
        sshd.port
    );
    // OpenSSH itself, for the reference.
    real_ssh(&config, &["target", "true"]).expect_error(255, &want);
    run_on_target(&config).expect_error(255, &want);
    assert!(!sshd.log().contains("Accepted publickey"), "no session");
    // Key exchange and host key type too.
    let config = client_config(&sshd, "  KexAlgorithms curve25519-sha256\n");
    let want = format!(
        "Unable to negotiate with 127.0.0.1 port {}: no matching key exchange method found. Their offer: diffie-hellman-group14-sha256",
        sshd.port
    );
    real_ssh(&config, &["target", "true"]).expect_error(255, &want);
    run_on_target(&config).expect_error(255, &want);
    let config = client_config(&sshd, "  HostKeyAlgorithms ssh-rsa\n");
    run_on_target(&config).expect_error(255, "no matching host key type found. Their offer: ");
    // The server's restriction honoured when we can meet it.
    let config = client_config(&sshd, "");
    run_on_target(&config).expect_code(0);
    assert!(
        negotiated(&sshd).contains("kex: client->server cipher: aes256-ctr"),
        "{}",
        negotiated(&sshd)
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn command_line_forms_set_the_policy_of_an_on_demand_connection() {
    require_sshd();
    let sshd = debug_sshd(&[]);
    let config = client_config(&sshd, "  Ciphers aes128-ctr\n");
    // `-c` beats the file and `-o`; `-m` sets the MAC; `-o` the exchange.
    fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-o",
        "Ciphers=aes192-ctr",
        "-c",
        "aes256-ctr",
        "-m",
        "hmac-sha2-512",
        "-o",
        "KexAlgorithms=ecdh-sha2-nistp384",
        "target",
        "true",
    ])
    .assert_no_panic()
    .expect_code(0);
    let log = negotiated(&sshd);
    assert!(log.contains("kex: algorithm: ecdh-sha2-nistp384"), "{log}");
    assert!(
        log.contains("kex: client->server cipher: aes256-ctr MAC: hmac-sha2-512 "),
        "{log}"
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_name_we_do_not_implement_is_an_unknown_name() {
    require_sshd();
    let sshd = debug_sshd(&[]);
    let config = client_config(&sshd, "");
    let ours = fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-o",
        "Ciphers=foo",
        "target",
        "true",
    ]);
    let theirs = real_ssh(&config, &["-o", "Ciphers=foo", "target", "true"]);
    theirs.expect_error(255, "command-line line 0: Bad SSH2 cipher spec 'foo'.");
    ours.expect_error(255, "command-line line 0: Bad SSH2 cipher spec 'foo'.");
    fakessh(&[
        "--ssh-config",
        &config,
        "--",
        "ssh",
        "-c",
        "foo",
        "target",
        "true",
    ])
    .expect_error(255, "Unknown cipher type 'foo'");
    // OpenSSH knows umac and sntrup761; our client does not implement
    // them. A list of only such names leaves us nothing to offer: refused
    // before connecting, saying so.
    let config = client_config(&sshd, "  MACs umac-64-etm@openssh.com\n");
    run_on_target(&config).expect_error(
        255,
        "MACs umac-64-etm@openssh.com: mitogen-fakessh's ssh client implements none of these",
    );
    let config = client_config(
        &sshd,
        "  KexAlgorithms sntrup761x25519-sha512@openssh.com\n",
    );
    run_on_target(&config).expect_error(
        255,
        "KexAlgorithms sntrup761x25519-sha512@openssh.com: mitogen-fakessh's ssh client implements none of these",
    );
    assert!(
        !sshd.log().contains("Accepted publickey"),
        "nothing connected"
    );
    // A hardening guide's list (sntrup761 first): what we implement of it
    // is offered, nothing outside it.
    let config = client_config(
        &sshd,
        "  KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256\n",
    );
    run_on_target(&config).expect_code(0);
    let log = negotiated(&sshd);
    assert!(log.contains("kex: algorithm: curve25519-sha256"), "{log}");
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn our_default_prefers_the_strongest_exchange_the_server_offers() {
    require_sshd();
    // Debian 12's sshd (OpenSSH 9.2) has no mlkem768x25519-sha256; of what
    // it is made to offer, we pick curve25519 over the others.
    let sshd = debug_sshd(&[
        "KexAlgorithms diffie-hellman-group14-sha256,ecdh-sha2-nistp256,curve25519-sha256",
    ]);
    let config = client_config(&sshd, "");
    run_on_target(&config).expect_code(0);
    let log = negotiated(&sshd);
    assert!(log.contains("kex: algorithm: curve25519-sha256"), "{log}");
}
