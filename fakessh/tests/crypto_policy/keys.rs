//! The key half of the crypto policy against a real OpenSSH sshd:
//! PubkeyAcceptedAlgorithms (key files, their certificates, ssh-agent),
//! RequiredRSASize (user keys and host keys) and CASignatureAlgorithms
//! (host certificates). What was offered is read from sshd's
//! `LogLevel DEBUG` log (`pkalg ... pkblob ...`), never from our claim.

use std::process::Command;
use std::time::Duration;

use super::*;

/// Run ssh-keygen; it must succeed.
fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new key pair of `kind` (`rsa`, `ed25519`) and `bits` (0: the
/// default) at `path`.
fn new_key(path: &std::path::Path, kind: &str, bits: u32) {
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", "", "-f"];
    args.push(path.to_str().unwrap());
    let bits = bits.to_string();
    if bits != "0" {
        args.extend_from_slice(&["-b", &bits]);
    }
    keygen(&args);
}

/// `SHA256:...` of the public key file `path`.
fn fingerprint(path: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint for {}: {text}", path.display()))
        .to_string()
}

/// An ssh_config naming the server `target` with `keys` as the only
/// identity files, and `extra` lines.
fn config_with_keys(sshd: &Sshd, keys: &[&std::path::Path], extra: &str) -> String {
    std::fs::write(sshd.path("known_hosts"), sshd.host_key_line()).unwrap();
    let path = sshd.path("policy_config");
    let block = sshd.config_block_with_keys("target", "root", keys, extra);
    std::fs::write(&path, block).unwrap();
    path.display().to_string()
}

/// `mitogen-fakessh -v --to ssh:target -- ssh h 'echo ran-remotely'`.
fn run_verbose_on_target(config: &str) -> Outcome {
    run_on_target_with(&["-v"], config)
}

/// A user with an ed25519 and an RSA key, both authorized:
/// `PubkeyAcceptedAlgorithms rsa-sha2-512` offers the RSA key only (sshd's
/// log shows it accepted, and never sees the ed25519 key), signed with
/// rsa-sha2-512; `ssh-ed25519` with only the RSA key fails with no
/// attempt at all.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn pubkey_accepted_algorithms_choose_the_keys_offered() {
    require_sshd();
    let first = debug_sshd(&[]);
    let sshd = &first;
    let ed25519 = sshd.path("user_key");
    let rsa = sshd.path("rsa_key");
    new_key(&rsa, "rsa", 2048);
    let mut authorized = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    authorized.push_str(&std::fs::read_to_string(sshd.path("rsa_key.pub")).unwrap());
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    let ed25519_fp = fingerprint(&sshd.path("user_key.pub"));
    let rsa_fp = fingerprint(&sshd.path("rsa_key.pub"));

    // The ed25519 key comes first, and would be taken.
    let config = config_with_keys(sshd, &[&ed25519, &rsa], "");
    run_verbose_on_target(&config).expect_code(0);
    assert!(
        sshd.log()
            .contains("Accepted publickey for root from 127.0.0.1 port"),
        "{}",
        sshd.log()
    );
    assert!(
        sshd.log().contains(&ed25519_fp),
        "the control: ed25519 used"
    );

    // A fresh server (and log) taking both keys, which stay where they are.
    let both = std::fs::read_to_string(first.path("authorized_keys")).unwrap();
    let sshd = debug_sshd(&[]);
    std::fs::write(sshd.path("authorized_keys"), &both).unwrap();
    let config = config_with_keys(
        &sshd,
        &[&ed25519, &rsa],
        "  PubkeyAcceptedAlgorithms rsa-sha2-512\n",
    );
    let out = run_verbose_on_target(&config);
    out.expect_code(0);
    out.expect_stderr("ssh-ed25519 not in PubkeyAcceptedAlgorithms");
    let log = sshd.log();
    assert!(
        log.contains("Accepted publickey for root from 127.0.0.1")
            && log.contains(&format!("RSA {rsa_fp}")),
        "the RSA key logged in:\n{log}"
    );
    assert!(
        !log.contains(&ed25519_fp),
        "the ed25519 key was offered:\n{log}"
    );
    assert!(
        log.contains(&format!("pkalg rsa-sha2-512 pkblob RSA {rsa_fp}")),
        "signed with rsa-sha2-512:\n{log}"
    );
    // OpenSSH, for the reference, skips it the same way.
    real_ssh(&config, &["-v", "-o", "BatchMode=yes", "target", "true"])
        .expect_code(0)
        .expect_stderr("Skipping ssh-ed25519 key");

    // Only the RSA key, and a policy of ed25519 keys: nothing to offer.
    let sshd = debug_sshd(&[]);
    std::fs::copy(first.path("rsa_key.pub"), sshd.path("authorized_keys")).unwrap();
    let config = config_with_keys(&sshd, &[&rsa], "  PubkeyAcceptedAlgorithms ssh-ed25519\n");
    let out = run_verbose_on_target(&config);
    out.expect_error(255, "authentication failed for user root");
    out.expect_stderr("ssh-rsa not in PubkeyAcceptedAlgorithms");
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains(&rsa_fp), "the RSA key was offered:\n{log}");
    real_ssh(&config, &["-o", "BatchMode=yes", "target", "true"])
        .expect_error(255, "Permission denied");
    assert!(!sshd.log().contains(&rsa_fp), "{}", sshd.log());

    // RequiredRSASize above the key's 2048 bits: not used either.
    let sshd = debug_sshd(&[]);
    std::fs::copy(first.path("rsa_key.pub"), sshd.path("authorized_keys")).unwrap();
    let config = config_with_keys(&sshd, &[&rsa], "  RequiredRSASize 3072\n");
    let out = run_verbose_on_target(&config);
    out.expect_error(255, "authentication failed for user root");
    out.expect_stderr("Invalid key length: RSA key of 2048 bits, RequiredRSASize is 3072");
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains(&rsa_fp), "the RSA key was offered:\n{log}");
}

/// `RequiredRSASize 2048` against a server whose only RSA host key has
/// 1024 bits (known, so only its size is wrong): refused with OpenSSH's
/// words; 1024 (the default) takes it.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_small_rsa_host_key_is_refused_under_required_rsa_size() {
    require_sshd();
    let keys = tempfile::tempdir().unwrap();
    let host_rsa = keys.path().join("host_rsa");
    new_key(&host_rsa, "rsa", 1024);
    let sshd = debug_sshd(&[&format!("HostKey={}", host_rsa.display())]);
    let rsa_pub = std::fs::read_to_string(keys.path().join("host_rsa.pub")).unwrap();
    let known = |config: &str| {
        let mut words = rsa_pub.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            words.next().unwrap(),
            words.next().unwrap()
        );
        std::fs::write(sshd.path("known_hosts"), line).unwrap();
        config.to_string()
    };
    let only_rsa = "  HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\n  StrictHostKeyChecking yes\n";
    let config = client_config(&sshd, &format!("{only_rsa}  RequiredRSASize 2048\n"));
    let config = known(&config);
    real_ssh(&config, &["-o", "BatchMode=yes", "target", "true"])
        .expect_error(255, "Bad server host key: Invalid key length");
    run_on_target(&config).expect_error(255, "Bad server host key: Invalid key length");
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
    // The default (1024) takes the same key.
    let config = client_config(&sshd, only_rsa);
    let config = known(&config);
    run_on_target(&config).expect_code(0);
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

/// A host certificate from a trusted CA, signed with an algorithm not in
/// `CASignatureAlgorithms`: not trusted (OpenSSH's words), and the host is
/// judged by its plain key: unknown, refused; known, accepted.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn a_host_certificate_signed_outside_ca_signature_algorithms_is_not_trusted() {
    require_sshd();
    let keys = Sshd::start();
    let ca = keys.path("ca");
    new_key(&ca, "ed25519", 0);
    let public = keys.path("host_key.pub");
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "policy-cert",
        "-h",
        "-n",
        "127.0.0.1",
        "-V",
        "-5m:+1h",
        public.to_str().unwrap(),
    ]);
    let cert = keys.path("host_key-cert.pub");
    let sshd = Sshd::start_sharing(
        &keys,
        &[
            "LogLevel DEBUG",
            &format!("HostCertificate={}", cert.display()),
        ],
    );
    let ca_line = format!(
        "@cert-authority 127.0.0.1,[127.0.0.1]:* {}",
        std::fs::read_to_string(keys.path("ca.pub")).unwrap()
    );
    let config_path = sshd.path("policy_config");
    let config = config_path.display().to_string();
    let write = |known_hosts: &str, extra: &str| {
        std::fs::write(sshd.path("known_hosts"), known_hosts).unwrap();
        let extra = format!("  StrictHostKeyChecking yes\n{extra}");
        std::fs::write(&config_path, sshd.config_block("target", &extra)).unwrap();
    };
    // The control: the ed25519 CA is trusted by default.
    write(&ca_line, "");
    let out = run_verbose_on_target(&config);
    out.expect_code(0);
    out.expect_stderr("host certificate \"policy-cert\" signed by ED25519");
    // Only RSA CAs: the certificate is not trusted, and the plain key is
    // not in known_hosts.
    let rsa_only = "  CASignatureAlgorithms rsa-sha2-512,rsa-sha2-256\n";
    write(&ca_line, rsa_only);
    let before = sshd.accepted();
    let out = run_on_target(&config);
    out.expect_error(255, "Certificate signed with disallowed algorithm");
    out.expect_stderr("is not in known_hosts");
    assert_eq!(sshd.accepted(), before, "no login");
    real_ssh(&config, &["-o", "BatchMode=yes", "target", "true"])
        .expect_error(255, "Certificate signed with disallowed algorithm");
    // The plain key known too: accepted by it, still saying why the
    // certificate was not.
    write(&format!("{ca_line}{}", sshd.host_key_line()), rsa_only);
    let out = run_verbose_on_target(&config);
    out.expect_code(0);
    out.expect_stderr("Certificate signed with disallowed algorithm");
    assert!(
        !out.stderr_text()
            .contains("host certificate \"policy-cert\"")
    );
}

/// An ssh-agent of this test (`ssh-agent -D`), ended with it.
struct Agent {
    sock: std::path::PathBuf,
    child: std::process::Child,
}

impl Agent {
    fn start(sock: std::path::PathBuf, keys: &[&std::path::Path]) -> Agent {
        require("ssh-agent");
        require("ssh-add");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent { sock, child };
        let start = std::time::Instant::now();
        while !agent.sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ssh-agent made no socket at {}",
                agent.sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in keys {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.sock)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ssh-agent keys obey PubkeyAcceptedAlgorithms as key files do: with an
/// ed25519 and an RSA key in the agent, `rsa-sha2-512` logs in with the
/// RSA key and the ed25519 key never reaches sshd; a list naming neither
/// offers nothing.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn pubkey_accepted_algorithms_filter_ssh_agent_keys() {
    require_sshd();
    let sshd = debug_sshd(&[]);
    let rsa = sshd.path("rsa_key");
    new_key(&rsa, "rsa", 2048);
    let mut authorized = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    authorized.push_str(&std::fs::read_to_string(sshd.path("rsa_key.pub")).unwrap());
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    let ed25519_fp = fingerprint(&sshd.path("user_key.pub"));
    let rsa_fp = fingerprint(&sshd.path("rsa_key.pub"));
    let agent = Agent::start(sshd.path("agent.sock"), &[&sshd.path("user_key"), &rsa]);
    // An IdentityFile that does not exist, so that no default key file is
    // tried either: only the agent can log in.
    let run = |extra: &str| {
        let block = sshd.config_block("target", extra).replace(
            &format!("  IdentityFile {}\n", sshd.path("user_key").display()),
            &format!("  IdentityFile {}\n", sshd.path("no_such_key").display()),
        );
        let config = sshd.path("policy_config").display().to_string();
        std::fs::write(&config, block).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["-v", "--ssh-config", &config, "--to", "ssh:target", "--"])
            .args(["ssh", "h", "echo via-agent"])
            .env("SSH_AUTH_SOCK", &agent.sock);
        let out = run_with(cmd, b"", Duration::from_secs(60));
        out.assert_no_panic();
        out
    };
    let out = run("  PubkeyAcceptedAlgorithms rsa-sha2-512\n");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "via-agent\n");
    out.expect_stderr("skipping agent key");
    let log = sshd.log();
    assert!(
        log.contains(&format!("pkalg rsa-sha2-512 pkblob RSA {rsa_fp}")),
        "{log}"
    );
    assert!(
        !log.contains(&ed25519_fp),
        "the ed25519 agent key was offered:\n{log}"
    );
    let accepted = sshd.accepted();
    let out = run("  PubkeyAcceptedAlgorithms ecdsa-sha2-nistp256\n");
    out.expect_error(255, "authentication failed for user root");
    assert_eq!(sshd.accepted(), accepted, "no login");
    assert!(!sshd.log().contains(&ed25519_fp), "{}", sshd.log());
    // The control: the default list logs in with the agent's first key.
    run("").expect_code(0);
    assert!(sshd.log().contains(&ed25519_fp), "{}", sshd.log());
}

/// A key file with its certificate (CA trusted by sshd, the plain key
/// authorized too): PubkeyAcceptedAlgorithms naming only the certificate
/// type offers the certificate and never the plain key; naming only the
/// plain type offers the plain key and never the certificate.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn pubkey_accepted_algorithms_choose_between_a_key_and_its_certificate() {
    require_sshd();
    let keys = tempfile::tempdir().unwrap();
    let ca = keys.path().join("user_ca");
    new_key(&ca, "ed25519", 0);
    let sshd = debug_sshd(&[&format!(
        "TrustedUserCAKeys={}",
        keys.path().join("user_ca.pub").display()
    )]);
    let key = sshd.path("certified_key");
    new_key(&key, "ed25519", 0);
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "policy-user",
        "-n",
        "root",
        sshd.path("certified_key.pub").to_str().unwrap(),
    ]);
    std::fs::copy(sshd.path("certified_key.pub"), sshd.path("authorized_keys")).unwrap();
    let plain_offered = "pkalg ssh-ed25519 pkblob";
    let cert_offered = "pkalg ssh-ed25519-cert-v01@openssh.com";

    let config = config_with_keys(
        &sshd,
        &[&key],
        "  PubkeyAcceptedAlgorithms ssh-ed25519-cert-v01@openssh.com\n",
    );
    run_verbose_on_target(&config).expect_code(0);
    let log = sshd.log();
    assert!(
        log.contains("Accepted certificate ID \"policy-user\""),
        "{log}"
    );
    assert!(log.contains(cert_offered), "{log}");
    assert!(
        !log.contains(plain_offered),
        "the plain key was offered:\n{log}"
    );

    let sshd_log_before = log.len();
    let config = config_with_keys(&sshd, &[&key], "  PubkeyAcceptedAlgorithms ssh-ed25519\n");
    let out = run_verbose_on_target(&config);
    out.expect_code(0);
    out.expect_stderr("ssh-ed25519-cert-v01@openssh.com not in PubkeyAcceptedAlgorithms");
    let log = sshd.log()[sshd_log_before..].to_string();
    assert!(log.contains("Accepted publickey for root"), "{log}");
    assert!(log.contains(plain_offered), "{log}");
    assert!(
        !log.contains(cert_offered),
        "the certificate was offered:\n{log}"
    );
}
