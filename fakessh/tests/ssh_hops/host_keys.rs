//! Host keys as OpenSSH checks them: unknown and changed keys refused,
//! hashed and wildcard known_hosts entries, `accept-new`, host certificates.

use super::*;

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn unknown_host_key_is_refused_and_known_hosts_untouched() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    let out = to_target(&sshd, "ssh h true");
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains("ssh:target"), "{err}");
    assert!(err.contains("not in known_hosts"), "{err}");
    assert!(err.contains("ED25519 SHA256:"), "{err}");
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        ""
    );
    assert_eq!(sshd.accepted(), 0);
}

/// known_hosts as OpenSSH writes and reads it: a hashed entry
/// (`ssh-keygen -H`), a wildcard pattern, and an entry of an older key type
/// only, which the server must then be asked for.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn known_hosts_hashed_wildcard_and_older_key_types() {
    require_sshd();
    require("ssh-keygen");
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("rsa_host_key");
    keygen(&[
        "-q",
        "-t",
        "rsa",
        "-b",
        "2048",
        "-N",
        "",
        "-f",
        rsa.to_str().unwrap(),
    ]);
    let sshd = Sshd::start_with(&[&format!("HostKey={}", rsa.display())]);
    let known = sshd.path("known_hosts");
    let ed25519_line = sshd.host_key_line();
    let key_part = |line: &str| line.split_once(' ').unwrap().1.trim().to_string();
    // Hashed by OpenSSH itself.
    std::fs::write(&known, &ed25519_line).unwrap();
    keygen(&["-q", "-H", "-f", known.to_str().unwrap()]);
    let hashed = std::fs::read_to_string(&known).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    to_target(&sshd, "ssh h true").expect_code(0);
    // A wildcard pattern, with a negation that does not apply.
    std::fs::write(
        &known,
        format!("[127.0.0.*]:*,!nothing {}\n", key_part(&ed25519_line)),
    )
    .unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // Only the RSA key recorded: it is asked for, and accepted.
    let rsa_pub = std::fs::read_to_string(keys.path().join("rsa_host_key.pub")).unwrap();
    let host_field = ed25519_line.split_once(' ').unwrap().0.to_string();
    let rsa_only = format!("{host_field} {}\n", rsa_pub.trim());
    std::fs::write(&known, &rsa_only).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    assert_eq!(std::fs::read_to_string(&known).unwrap(), rsa_only);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn accept_new_learns_the_host_key() {
    require_sshd();
    let sshd = Sshd::start();
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    std::fs::write(
        sshd.path("ssh_config"),
        sshd.config_block("target", "  StrictHostKeyChecking accept-new\n"),
    )
    .unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    let learned = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    let key = std::fs::read_to_string(sshd.path("host_key.pub")).unwrap();
    let key_b64 = key.split_whitespace().nth(1).unwrap();
    assert!(learned.contains(key_b64), "known_hosts: {learned}");
    assert!(learned.contains(&format!("[127.0.0.1]:{}", sshd.port)));
    // And it is now trusted under the strict default.
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", "")).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // With HashKnownHosts (Debian's default), learned under a hashed name.
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    let extra = "  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n";
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", extra)).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    let learned = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    assert!(learned.starts_with("|1|"), "known_hosts: {learned}");
    assert!(!learned.contains("127.0.0.1") && learned.contains(key_b64));
    std::fs::write(sshd.path("ssh_config"), sshd.config_block("target", "")).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn changed_host_key_is_refused() {
    require_sshd();
    let sshd = Sshd::start();
    let other = tempfile::tempdir().unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other.path().join("k"))
        .status()
        .unwrap();
    assert!(st.success());
    let wrong = std::fs::read_to_string(other.path().join("k.pub")).unwrap();
    let mut w = wrong.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        w.next().unwrap(),
        w.next().unwrap()
    );
    std::fs::write(sshd.path("known_hosts"), &line).unwrap();
    std::fs::write(
        sshd.path("ssh_config"),
        sshd.config_block("target", "  StrictHostKeyChecking accept-new\n"),
    )
    .unwrap();
    let out = to_target(&sshd, "ssh h true");
    out.expect_error(255, "CHANGED");
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        line
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn host_certificates_from_a_known_authority() {
    require_sshd();
    require("ssh-keygen");
    let keys = Sshd::start();
    let ca = keys.path("ca");
    let host_pub = keys.path("host_key.pub");
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "test-ca",
        "-f",
        ca.to_str().unwrap(),
    ]);
    // Certificates for the same host key: one good, one naming another
    // host, one long expired.
    let sign = |id: &str, principal: &str, validity: &str| {
        let dir = keys.path(id);
        std::fs::create_dir(&dir).unwrap();
        let public = dir.join("host_key.pub");
        std::fs::copy(&host_pub, &public).unwrap();
        keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            id,
            "-h",
            "-n",
            principal,
            "-V",
            validity,
            public.to_str().unwrap(),
        ]);
        dir.join("host_key-cert.pub").display().to_string()
    };
    let good = sign("good-cert", "127.0.0.1", "-5m:+1h");
    let wrong = sign("wrong-cert", "db.example.org", "-5m:+1h");
    let expired = sign("expired-cert", "127.0.0.1", "20200101:20200102");
    let ca_line = |marker: &str| {
        let ca_pub = std::fs::read_to_string(keys.path("ca.pub")).unwrap();
        format!("{marker} 127.0.0.1,[127.0.0.1]:* {ca_pub}")
    };
    let run = |sshd: &Sshd, known_hosts: &str| {
        // known_hosts holds no plain key for the server: only the CA.
        std::fs::write(sshd.path("known_hosts"), known_hosts).unwrap();
        verbose_ssh_via_target(sshd, "echo certified")
    };
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={good}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "certified\n");
    out.expect_stderr("host certificate \"good-cert\" signed by ED25519 SHA256:");
    // The CA revoked: refused, and said so.
    let revoked = format!("{}{}", ca_line("@cert-authority"), ca_line("@revoked"));
    let out = run(&sshd, &revoked);
    out.expect_error(255, "@revoked");
    // Without the CA line the certificate is not asked for, and the plain
    // key is unknown.
    let out = run(&sshd, "");
    out.expect_error(255, "is not in known_hosts");
    drop(sshd);
    // A certificate for another host is refused, naming what it names.
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={wrong}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_error(255, "it names db.example.org, not 127.0.0.1");
    drop(sshd);
    let sshd = Sshd::start_sharing(&keys, &[&format!("HostCertificate={expired}")]);
    let out = run(&sshd, &ca_line("@cert-authority"));
    out.expect_error(255, "outside its validity period");
}
