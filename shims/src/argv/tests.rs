use super::*;
use proptest::prelude::*;

fn p(words: &[&str]) -> Result<SshInvocation, ParseError> {
    parse(&words.iter().map(OsString::from).collect::<Vec<_>>())
}

#[test]
fn rsync_push_with_login() {
    // Captured: rsync -a src/ user@host:/dst
    let inv = p(&[
        "-l",
        "user",
        "host",
        "rsync",
        "--server",
        "-logDtpre.iLsfxCIvu",
        ".",
        "/dst",
    ])
    .unwrap();
    assert_eq!(inv.host, "host");
    assert_eq!(inv.user.as_deref(), Some("user"));
    assert_eq!(
        String::from_utf8_lossy(&inv.command_line()),
        "rsync --server -logDtpre.iLsfxCIvu . /dst"
    );
}

#[test]
fn rsync_pull_without_login() {
    let inv = p(&[
        "host",
        "rsync",
        "--server",
        "--sender",
        "-logDtprze.iLsfxCIvu",
        ".",
        "/src/",
    ])
    .unwrap();
    assert_eq!(inv.user, None);
    assert_eq!(inv.command_words()[1], "--server");
}

#[test]
fn scp_sftp_mode() {
    // Captured: scp -A -P 2222 f user@h:/d
    let inv = p(&[
        "-x",
        "-oPermitLocalCommand=no",
        "-oClearAllForwardings=yes",
        "-oRemoteCommand=none",
        "-oRequestTTY=no",
        "-A",
        "-oForwardAgent=no",
        "-p",
        "2222",
        "-l",
        "user",
        "-s",
        "--",
        "h",
        "sftp",
    ])
    .unwrap();
    assert!(inv.subsystem);
    assert_eq!(inv.port, Some(2222));
    assert_eq!(inv.command_words(), vec!["sftp"]);
    assert_eq!(inv.option("RequestTTY"), Some("no"));
}

#[test]
fn scp_legacy_mode_unquoted_path() {
    let inv = p(&["-x", "-oForwardAgent=no", "--", "h", "scp -t /srv/a b$x"]).unwrap();
    assert!(!inv.subsystem);
    assert_eq!(
        String::from_utf8_lossy(&inv.command_line()),
        "scp -t /srv/a b$x"
    );
}

#[test]
fn sftp_space_separated_options() {
    let inv = p(&[
        "-oForwardX11 no",
        "-oPermitLocalCommand no",
        "-oClearAllForwardings yes",
        "-oForwardAgent no",
        "-oPort 2022",
        "-l",
        "bob",
        "-s",
        "--",
        "h",
        "sftp",
    ])
    .unwrap();
    assert_eq!(inv.option("forwardx11"), Some("no"));
    assert_eq!(inv.port, Some(2022));
    assert_eq!(inv.user.as_deref(), Some("bob"));
}

#[test]
fn git_invocation() {
    let inv = p(&[
        "-o",
        "SendEnv=GIT_PROTOCOL",
        "-p",
        "2222",
        "git@h",
        "git-upload-pack '/srv/it'\\''s.git'",
    ])
    .unwrap();
    assert_eq!(inv.user.as_deref(), Some("git"));
    assert_eq!(inv.port, Some(2222));
    assert_eq!(
        inv.option_values("SendEnv").collect::<Vec<_>>(),
        vec!["GIT_PROTOCOL"]
    );
    assert_eq!(inv.command.len(), 1);
}

#[test]
fn git_probe() {
    let inv = p(&["-G", "-o", "SendEnv=GIT_PROTOCOL", "-p", "22", "u@h"]).unwrap();
    assert!(inv.print_config);
    assert!(inv.command.is_empty());
}

#[test]
fn first_value_wins_and_login_beats_destination_user() {
    let inv = p(&["-oPort=1", "-p", "2", "-oUser=a", "-l", "b", "c@h"]).unwrap();
    assert_eq!(inv.port, Some(1));
    assert_eq!(inv.user.as_deref(), Some("a"));
}

#[test]
fn clusters_and_attached_values() {
    let inv = p(&["-vvTp2222", "-lroot", "h", "true"]).unwrap();
    assert_eq!(inv.verbose, 2);
    assert!(inv.no_tty);
    assert_eq!(inv.port, Some(2222));
    assert_eq!(inv.user.as_deref(), Some("root"));
}

#[test]
fn options_after_host_until_command() {
    let inv = p(&["h", "-l", "u", "ls", "-la", "--", "x"]).unwrap();
    assert_eq!(inv.user.as_deref(), Some("u"));
    assert_eq!(inv.command_words(), vec!["ls", "-la", "--", "x"]);
    let inv = p(&["--", "h", "-l", "u"]).unwrap();
    assert_eq!(inv.command_words(), vec!["-l", "u"]);
}

fn err(words: &[&str]) -> String {
    p(words).unwrap_err().to_string()
}

#[test]
fn errors() {
    assert_eq!(err(&["-Z", "h"]), "unknown option -- Z");
    assert_eq!(err(&["-p"]), "option requires an argument -- p");
    assert_eq!(err(&[]), "no destination given");
    assert_eq!(err(&["-v"]), "no destination given");
    assert_eq!(err(&["-p", "abc", "h"]), "Bad port 'abc'");
    assert_eq!(
        err(&["-o", "Bogus=1", "h", "true"]),
        "command-line: line 0: Bad configuration option: bogus"
    );
    assert!(p(&["-o", "IgnoreUnknown=bog*", "-o", "Bogus=1", "h"]).is_ok());
    assert_eq!(
        err(&["-o", "Host=x", "h"]),
        "command-line line 0: Host directive not supported as a command-line option"
    );
    assert_eq!(p(&["-L", "1:a:2", "h"]).unwrap().local_forwards.len(), 1);
    assert_eq!(
        p(&["-L", "1:a", "h"]).unwrap_err().to_string(),
        "Bad local forwarding specification '1:a'"
    );
    assert!(p(&["-V"]).unwrap().version);
    assert!(p(&["-qV", "-Z"]).unwrap().version);
}

#[test]
fn cipher_and_mac_specs_beat_every_option() {
    let inv = p(&[
        "-o",
        "Ciphers=aes128-ctr",
        "-c",
        "aes256-ctr",
        "-m",
        "hmac-sha2-256",
        "h",
    ])
    .unwrap();
    assert_eq!(inv.option("Ciphers"), Some("aes256-ctr"));
    assert_eq!(inv.option("MACs"), Some("hmac-sha2-256"));
    assert_eq!(err(&["-c", "foo", "h"]), "Unknown cipher type 'foo'");
    assert_eq!(
        p(&["-O", "check", "h"]).unwrap().master,
        Some(proto::session::MasterCommand::Check)
    );
    assert_eq!(
        p(&["-O", "forward", "-L", "1:a:2", "h"])
            .unwrap()
            .unsupported
            .as_deref(),
        Some("-O forward")
    );
    assert_eq!(err(&["-O", "bogus", "h"]), "Invalid multiplex command.");
    assert_eq!(
        err(&["-m", "+hmac-sha1", "h"]),
        "Unknown mac type '+hmac-sha1'"
    );
    assert!(p(&["-c", "^aes256-ctr", "h"]).is_ok());
    assert_eq!(
        err(&["-o", "Ciphers=foo", "h"]),
        "command-line line 0: Bad SSH2 cipher spec 'foo'."
    );
}

#[test]
fn hostile_names_are_refused_as_openssh_refuses_them() {
    assert_eq!(
        err(&["$(touch pwned)", "true"]),
        "hostname contains invalid characters"
    );
    assert_eq!(
        err(&["-l", "$(touch pwned)", "h"]),
        "remote username contains invalid characters"
    );
    assert_eq!(
        err(&["`id`@h"]),
        "remote username contains invalid characters"
    );
    assert_eq!(
        err(&["-oUser=a;b", "h"]),
        "remote username contains invalid characters"
    );
    assert_eq!(
        err(&["--", "-oProxyCommand=x", "true"]),
        "hostname contains invalid characters"
    );
    // Bytes that are not UTF-8 are fine in the command, not in the host.
    use std::os::unix::ffi::OsStringExt;
    let latin1 = OsString::from_vec(b"/srv/caf\xe9.txt".to_vec());
    let inv = parse(&[OsString::from("h"), OsString::from("cat"), latin1]).unwrap();
    assert_eq!(inv.command_line(), b"cat /srv/caf\xe9.txt");
    let bad_host = OsString::from_vec(b"caf\xe9".to_vec());
    assert!(matches!(
        parse(&[bad_host]),
        Err(ParseError::InvalidHostname)
    ));
}

#[test]
fn destinations() {
    let inv = p(&["ssh://u@[::1]:2222/", "true"]).unwrap();
    assert_eq!(
        (inv.user.as_deref(), inv.host.as_str(), inv.port),
        (Some("u"), "::1", Some(2222))
    );
    let inv = p(&["a@b@host", "true"]).unwrap();
    assert_eq!(
        (inv.user.as_deref(), inv.host.as_str()),
        (Some("a@b"), "host")
    );
    let inv = p(&["fe80::1", "true"]).unwrap();
    assert_eq!(inv.host, "fe80::1");
}

proptest! {
    /// Whatever follows the destination's first non-option word is the
    /// command, verbatim, however option-like it looks.
    #[test]
    fn command_words_survive(words in proptest::collection::vec("[-a-zA-Z0-9 ./'$=]{0,12}", 0..8),
                             login in proptest::option::of("[a-z]{1,8}"),
                             port in proptest::option::of(1u16..)) {
        let mut argv = Vec::new();
        if let Some(l) = &login { argv.push("-l".to_string()); argv.push(l.clone()); }
        if let Some(pt) = port { argv.push(format!("-p{pt}")); }
        argv.push("host".to_string());
        argv.push("cmd".to_string());
        argv.extend(words.iter().cloned());
        let inv = parse(&argv.iter().map(OsString::from).collect::<Vec<_>>()).unwrap();
        prop_assert_eq!(inv.user.clone(), login);
        prop_assert_eq!(inv.port, port);
        let mut expect = vec!["cmd".to_string()];
        expect.extend(words);
        prop_assert_eq!(inv.command_words(), expect);
    }

    /// The parser never panics, on any argv.
    #[test]
    fn never_panics(argv in proptest::collection::vec(".{0,10}", 0..10)) {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let _ = parse(&argv);
    }
}
