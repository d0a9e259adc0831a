//! Logging in: errors that name the hop, passwords and keyboard-interactive
//! prompts (SSH_ASKPASS), encrypted keys, user certificates, ssh-agent.

use super::*;

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn authentication_failure_names_the_hop() {
    require_sshd();
    let sshd = Sshd::start();
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("not_authorized");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = sshd.config_block("target", "").replace(
        &sshd.path("user_key").display().to_string(),
        &key.display().to_string(),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let start = Instant::now();
    let out = to_target(&sshd, "ssh h true");
    out.expect_code(255);
    let err = out.stderr_text();
    assert!(err.contains("ssh:target: authentication failed"), "{err}");
    assert!(err.contains("not_authorized"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30));

    // --password-file (for sudo/su/doas) is never offered to an sshd: the
    // same failure, no retry loop (fakessh/tests/trust_secrets.rs shows it unsent).
    let pw = other.path().join("pw");
    std::fs::write(&pw, "wrong-password\n").unwrap();
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&pw, private).unwrap();
    let out = fakessh(&[
        "--ssh-config",
        &sshd.ssh_config(),
        "--password-file",
        pw.to_str().unwrap(),
        "--to",
        "ssh:target",
        "--",
        "true",
    ]);
    out.expect_error(255, "ssh:target: authentication failed");
}

/// An SSH_ASKPASS program that logs each prompt it is given and answers
/// with the contents of a file.
struct Askpass {
    program: std::path::PathBuf,
    prompts: std::path::PathBuf,
    answer: std::path::PathBuf,
}

impl Askpass {
    fn new(sshd: &Sshd) -> Askpass {
        use std::os::unix::fs::PermissionsExt;
        let a = Askpass {
            program: sshd.path("askpass"),
            prompts: sshd.path("prompts"),
            answer: sshd.path("answer"),
        };
        let script = format!(
            "#!/bin/sh\necho \"$1\" >> {}\ncat {}\n",
            a.prompts.display(),
            a.answer.display()
        );
        std::fs::write(&a.program, script).unwrap();
        std::fs::set_permissions(&a.program, std::fs::Permissions::from_mode(0o755)).unwrap();
        a
    }

    fn answer(&self, text: &str) {
        std::fs::write(&self.answer, format!("{text}\n")).unwrap();
    }

    /// `ssh h SCRIPT` through `chain`, with this program forced as
    /// SSH_ASKPASS; the outcome and the prompts it was shown.
    fn run(&self, sshd: &Sshd, chain: &str, script: &str) -> (Outcome, String) {
        let _ = std::fs::remove_file(&self.prompts);
        let mut cmd = Command::new(bin());
        cmd.args(["--ssh-config", &sshd.ssh_config(), "--to", chain, "--"])
            .args(["ssh", "h", script])
            .env_remove("SSH_AUTH_SOCK")
            .env("SSH_ASKPASS", &self.program)
            .env("SSH_ASKPASS_REQUIRE", "force");
        let out = run_with(cmd, b"", Duration::from_secs(120));
        let asked = std::fs::read_to_string(&self.prompts).unwrap_or_default();
        (out, asked)
    }
}

#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn a_password_is_asked_for_when_no_key_works() {
    require_sshd();
    require_account("mfs-deploy");
    let sshd = Sshd::start();
    // No usable key: the identity file does not exist.
    let no_key = std::path::Path::new("/nonexistent/key");
    let block = |alias: &str, extra: &str| {
        sshd.config_block_with_keys(alias, "mfs-deploy", &[no_key], extra)
    };
    let cfg = format!("{}{}", block("pw", ""), block("batch", "  BatchMode yes\n"));
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    askpass.answer("deploy-pw-4711");
    let (out, asked) = askpass.run(&sshd, "ssh:pw", "whoami");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-deploy\n");
    assert_eq!(asked, "mfs-deploy@127.0.0.1's password: \n");
    // A wrong password: asked three times, then a one-line error.
    askpass.answer("not-the-password");
    let (out, asked) = askpass.run(&sshd, "ssh:pw", "whoami");
    out.expect_code(255);
    assert_eq!(asked.lines().count(), 3, "{asked}");
    out.expect_stderr("password (3 wrong)");
    // BatchMode: never asked.
    let (out, asked) = askpass.run(&sshd, "ssh:batch", "whoami");
    out.expect_code(255);
    assert_eq!(asked, "");
}

/// A server that takes passwords only through keyboard-interactive (PAM),
/// as many do: the prompt it sends is shown and answered.
#[test]
#[ignore = "needs root, sshd and the test accounts (run ./tests/run)"]
fn keyboard_interactive_prompts_are_answered() {
    require_sshd();
    require_account("mfs-deploy");
    let sshd = Sshd::start_with(&[
        "UsePAM=yes",
        "KbdInteractiveAuthentication=yes",
        "PasswordAuthentication=no",
    ]);
    let no_key = std::path::Path::new("/nonexistent/key");
    let cfg = sshd.config_block_with_keys("kbd", "mfs-deploy", &[no_key], "");
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    askpass.answer("deploy-pw-4711");
    let (out, asked) = askpass.run(&sshd, "ssh:kbd", "whoami");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "mfs-deploy\n");
    // Named by user and host, as OpenSSH shows it.
    assert_eq!(
        asked,
        "(mfs-deploy@127.0.0.1) Password: \n",
        "{}",
        sshd.log()
    );
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn encrypted_key_files_ask_for_their_passphrase() {
    require_sshd();
    require("ssh-keygen");
    let sshd = Sshd::start();
    let key = sshd.path("locked_key");
    let locked_with = |path: &std::path::Path, passphrase: &str| {
        keygen(&[
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-f",
            path.to_str().unwrap(),
        ])
    };
    locked_with(&key, "open sesame");
    // A second encrypted key that the server does not know: offered first,
    // it must not be asked about.
    let stranger = sshd.path("stranger_key");
    locked_with(&stranger, "other");
    let public = std::fs::read_to_string(sshd.path("locked_key.pub")).unwrap();
    let mut authorized = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    authorized.push_str(&public);
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    // Only the two encrypted keys are offered (the usual test key is
    // swapped out).
    let block = |alias: &str, extra: &str| {
        sshd.config_block_with_keys(alias, "root", &[&stranger, &key], extra)
    };
    let cfg = format!(
        "{}{}",
        block("locked", ""),
        block("batch", "  BatchMode yes\n")
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    let askpass = Askpass::new(&sshd);
    let run = |chain: &str| askpass.run(&sshd, chain, "echo unlocked");
    // Right passphrase: asked once, although two hops log in with the key,
    // and never about the key the server does not take.
    askpass.answer("open sesame");
    let (out, asked) = run("ssh:locked,ssh:locked");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "unlocked\n");
    assert_eq!(
        asked,
        format!("Enter passphrase for key '{}': \n", key.display())
    );
    assert_eq!(sshd.accepted(), 2, "{}", sshd.log());
    // Wrong passphrase: asked three times (NumberOfPasswordPrompts), then a
    // one-line error that says so. (The server also takes passwords, so,
    // as with OpenSSH, the same answer is then tried three times as one.)
    askpass.answer("guess");
    let (out, asked) = run("ssh:locked");
    out.expect_code(255);
    let passphrase_prompts = asked
        .lines()
        .filter(|l| l.starts_with("Enter passphrase for key"))
        .count();
    assert_eq!(passphrase_prompts, 3, "{asked}");
    out.expect_stderr("wrong passphrase, 3 tries");
    out.expect_stderr("stranger_key (encrypted; not accepted by the server)");
    // BatchMode: never asked.
    let (out, asked) = run("ssh:batch");
    out.expect_code(255);
    assert_eq!(asked, "");
    out.expect_stderr("BatchMode forbids asking");
    // Loaded into ssh-agent, the key is used from there, IdentitiesOnly
    // notwithstanding: nothing is asked.
    require("ssh-agent");
    require("ssh-add");
    let agent = TestAgent::start(sshd.path("agent.sock"), &[]);
    askpass.answer("open sesame");
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .env("SSH_ASKPASS", &askpass.program)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let _ = std::fs::remove_file(&askpass.prompts);
    let mut cmd = Command::new(bin());
    cmd.args([
        "--ssh-config",
        &sshd.ssh_config(),
        "--to",
        "ssh:locked",
        "--",
    ])
    .args(["ssh", "h", "echo from-agent"])
    .env("SSH_AUTH_SOCK", &agent.sock)
    .env("SSH_ASKPASS", &askpass.program)
    .env("SSH_ASKPASS_REQUIRE", "force");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "from-agent\n");
    assert_eq!(
        std::fs::read_to_string(&askpass.prompts).unwrap_or_default(),
        ""
    );
}

/// A key the server does not list, certified by a CA it trusts
/// (TrustedUserCAKeys): offered with its `KEY-cert.pub`, as OpenSSH does,
/// or with a certificate named by CertificateFile.
#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn user_certificates_log_in() {
    require_sshd();
    require("ssh-keygen");
    let keys = Sshd::start();
    let ca = keys.path("user_ca");
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "user-ca",
        "-f",
        ca.to_str().unwrap(),
    ]);
    let sshd = Sshd::start_sharing(
        &keys,
        &[&format!(
            "TrustedUserCAKeys={}",
            keys.path("user_ca.pub").display()
        )],
    );
    let key = sshd.path("certified_key");
    keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
    let sign = |public: &std::path::Path| {
        keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "test-user",
            "-n",
            "root",
            public.to_str().unwrap(),
        ])
    };
    sign(&sshd.path("certified_key.pub"));
    let cfg = sshd.config_block_with_keys("target", "root", &[&key], "");
    std::fs::write(sshd.path("ssh_config"), &cfg).unwrap();
    let out = to_target(&sshd, "ssh h echo certified-user");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "certified-user\n");
    assert!(
        sshd.log().contains("Accepted certificate ID \"test-user\""),
        "{}",
        sshd.log()
    );
    // The certificate elsewhere, named by CertificateFile.
    let elsewhere = sshd.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(
        sshd.path("certified_key-cert.pub"),
        elsewhere.join("cert.pub"),
    )
    .unwrap();
    to_target(&sshd, "true").expect_error(255, "authentication failed");
    let cfg = sshd.config_block_with_keys(
        "target",
        "root",
        &[&key],
        &format!(
            "  CertificateFile {}\n",
            elsewhere.join("cert.pub").display()
        ),
    );
    std::fs::write(sshd.path("ssh_config"), cfg).unwrap();
    to_target(&sshd, "ssh h true").expect_code(0);
    // The certificate held by ssh-agent, with its key.
    require("ssh-agent");
    require("ssh-add");
    std::fs::copy(
        elsewhere.join("cert.pub"),
        sshd.path("certified_key-cert.pub"),
    )
    .unwrap();
    let agent = TestAgent::start(sshd.path("agent.sock"), &[&key]);
    std::fs::write(sshd.path("ssh_config"), config_without_key_files(&sshd)).unwrap();
    let before = sshd.log().matches("Accepted certificate").count();
    let out = agent.run(&sshd, "echo agent-certificate");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "agent-certificate\n");
    // sshd logs the certificate at the probe and again at the login.
    assert!(sshd.log().matches("Accepted certificate").count() > before);
}

/// An ssh-agent on a socket of its own, holding `keys`; killed on drop.
struct TestAgent {
    sock: std::path::PathBuf,
}

impl TestAgent {
    fn start(sock: std::path::PathBuf, keys: &[&std::path::Path]) -> TestAgent {
        let st = Command::new("ssh-agent")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let agent = TestAgent { sock };
        for key in keys {
            // ssh-add also loads KEY-cert.pub when it lies next to KEY.
            let st = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.sock)
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
        }
        agent
    }

    /// `--to ssh:target -- ssh h COMMAND` with this agent (and only it).
    fn run(&self, sshd: &Sshd, command: &str) -> Outcome {
        let mut cmd = Command::new(bin());
        cmd.args([
            "--ssh-config",
            &sshd.ssh_config(),
            "--to",
            "ssh:target",
            "--",
        ])
        .args(["ssh", "h", command])
        .env("SSH_AUTH_SOCK", &self.sock);
        run_with(cmd, b"", Duration::from_secs(60))
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let pattern = format!("ssh-agent -a {}", self.sock.display());
        let _ = Command::new("pkill").args(["-f", &pattern]).status();
    }
}

/// The "target" config block with an IdentityFile that does not exist
/// (so the default key files are not tried either): only an agent can log
/// in.
fn config_without_key_files(sshd: &Sshd) -> String {
    sshd.config_block("target", "").replace(
        &format!("  IdentityFile {}\n", sshd.path("user_key").display()),
        &format!("  IdentityFile {}\n", sshd.path("no_such_key").display()),
    )
}

#[test]
#[ignore = "needs root and sshd (run ./tests/run)"]
fn ssh_agent_authentication() {
    require_sshd();
    require("ssh-agent");
    require("ssh-add");
    let sshd = Sshd::start();
    let agent = TestAgent::start(sshd.path("agent.sock"), &[&sshd.path("user_key")]);
    std::fs::write(sshd.path("ssh_config"), config_without_key_files(&sshd)).unwrap();
    let out = agent.run(&sshd, "echo via-agent");
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "via-agent\n");
}
