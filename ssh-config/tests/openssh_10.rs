//! OpenSSH 10.x configurations: every keyword of 10.2's ssh_config(5) is
//! accepted, `RefuseConnection` refuses with OpenSSH's words, and the
//! `Match` criteria 10.x added are evaluated.

use ssh_config::keywords::{Effect, lookup};
use ssh_config::{ConfigError, OPENSSH_VERSION, SessionAsked, SessionType, SshConfig};

/// The keywords OpenSSH 10.2's ssh_config(5) documents (`.It Cm` in its
/// DESCRIPTION), as it spells them.
const OPENSSH_10_2: &[&str] = &[
    "AddKeysToAgent",
    "AddressFamily",
    "BatchMode",
    "BindAddress",
    "BindInterface",
    "CanonicalDomains",
    "CanonicalizeFallbackLocal",
    "CanonicalizeHostname",
    "CanonicalizeMaxDots",
    "CanonicalizePermittedCNAMEs",
    "CASignatureAlgorithms",
    "CertificateFile",
    "ChannelTimeout",
    "CheckHostIP",
    "Ciphers",
    "ClearAllForwardings",
    "Compression",
    "ConnectionAttempts",
    "ConnectTimeout",
    "ControlMaster",
    "ControlPath",
    "ControlPersist",
    "DynamicForward",
    "EnableEscapeCommandline",
    "EnableSSHKeysign",
    "EscapeChar",
    "ExitOnForwardFailure",
    "FingerprintHash",
    "ForkAfterAuthentication",
    "ForwardAgent",
    "ForwardX11",
    "ForwardX11Timeout",
    "ForwardX11Trusted",
    "GatewayPorts",
    "GlobalKnownHostsFile",
    "GSSAPIAuthentication",
    "GSSAPIDelegateCredentials",
    "HashKnownHosts",
    "Host",
    "HostbasedAcceptedAlgorithms",
    "HostbasedAuthentication",
    "HostKeyAlgorithms",
    "HostKeyAlias",
    "HostName",
    "IdentitiesOnly",
    "IdentityAgent",
    "IdentityFile",
    "IgnoreUnknown",
    "Include",
    "IPQoS",
    "KbdInteractiveAuthentication",
    "KbdInteractiveDevices",
    "KexAlgorithms",
    "KnownHostsCommand",
    "LocalCommand",
    "LocalForward",
    "LogLevel",
    "LogVerbose",
    "MACs",
    "Match",
    "NoHostAuthenticationForLocalhost",
    "NumberOfPasswordPrompts",
    "ObscureKeystrokeTiming",
    "PasswordAuthentication",
    "PermitLocalCommand",
    "PermitRemoteOpen",
    "PKCS11Provider",
    "Port",
    "PreferredAuthentications",
    "ProxyCommand",
    "ProxyJump",
    "ProxyUseFdpass",
    "PubkeyAcceptedAlgorithms",
    "PubkeyAuthentication",
    "RefuseConnection",
    "RekeyLimit",
    "RemoteCommand",
    "RemoteForward",
    "RequestTTY",
    "RequiredRSASize",
    "RevokedHostKeys",
    "SecurityKeyProvider",
    "SendEnv",
    "ServerAliveCountMax",
    "ServerAliveInterval",
    "SessionType",
    "SetEnv",
    "StdinNull",
    "StreamLocalBindMask",
    "StreamLocalBindUnlink",
    "StrictHostKeyChecking",
    "SyslogFacility",
    "Tag",
    "TCPKeepAlive",
    "Tunnel",
    "TunnelDevice",
    "UpdateHostKeys",
    "User",
    "UserKnownHostsFile",
    "VerifyHostKeyDNS",
    "VersionAddendum",
    "VisualHostKey",
    "WarnWeakCrypto",
    "XAuthLocation",
];

/// Names OpenSSH 10.2's readconf.c takes beyond those: aliases, deprecated
/// and unsupported keywords.
const OLD_NAMES: &[&str] = &[
    "ChallengeResponseAuthentication",
    "DSAAuthentication",
    "HostbasedKeyTypes",
    "IdentityFile2",
    "KeepAlive",
    "PubkeyAcceptedKeyTypes",
    "SkeyAuthentication",
    "SmartcardDevice",
    "TISAuthentication",
    "Cipher",
    "FallBackToRsh",
    "GlobalKnownHostsFile2",
    "Protocol",
    "RhostsAuthentication",
    "UseRoaming",
    "UsePrivilegedPort",
    "UseRsh",
    "UserKnownHostsFile2",
    "AFSTokenPassing",
    "CompressionLevel",
    "KerberosAuthentication",
    "KerberosTGTPassing",
    "RhostsRSAAuthentication",
    "RSAAuthentication",
];

fn every_keyword() -> SshConfig {
    let text = include_str!("every_keyword.conf")
        .replace("@KEY@", "/nonexistent/id_ed25519")
        .replace("@KNOWN_HOSTS@", "/nonexistent/known_hosts")
        .replace("@ALIAS@", "web");
    SshConfig::parse(&text).unwrap()
}

fn exec(command: &str) -> SessionAsked {
    SessionAsked {
        command: command.into(),
        session_type: None,
    }
}

#[test]
fn every_openssh_10_2_keyword_is_known_and_in_the_fixture() {
    let fixture = include_str!("every_keyword.conf");
    for name in OPENSSH_10_2.iter().chain(OLD_NAMES) {
        assert!(lookup(name).is_some(), "{name} is not known");
        let as_line = fixture
            .lines()
            .any(|l| l.trim_start().split(' ').next() == Some(*name));
        assert!(as_line, "{name} is not in every_keyword.conf");
    }
}

#[test]
fn a_config_with_every_keyword_resolves() {
    let cfg = every_keyword();
    let web = cfg
        .resolve_for("web", None, None, &[], &exec("true"))
        .unwrap();
    assert_eq!(web.hostname, "web");
    assert_eq!(web.user.as_deref(), Some("nobody"));
    // IdentityFile2 is IdentityFile: the same file, obtained once.
    assert_eq!(
        web.identity_files,
        [std::path::PathBuf::from("/nonexistent/id_ed25519")]
    );
    assert_eq!(web.set_env, [("FAKESSH_EVERY_KEYWORD".into(), "1".into())]);
    // `Match version OpenSSH_10*` applied, and its value came first.
    assert_eq!(web.obtained("warnweakcrypto"), Some("no"));
    // The alias obtained its keyword: first value wins across both names.
    let keep = SshConfig::parse("KeepAlive no\nTCPKeepAlive yes\n").unwrap();
    let got = keep.resolve("h", None, None).unwrap();
    assert_eq!(got.obtained("tcpkeepalive"), Some("no"));
    // And as -o options.
    for (key, value) in [
        ("WarnWeakCrypto", "no"),
        ("VersionAddendum", "none"),
        ("KeepAlive", "yes"),
        ("RefuseConnection", "no"),
    ] {
        assert!(ssh_config::options::check(&format!("{key}={value}"), None).is_ok());
    }
}

#[test]
fn old_and_unsupported_names_take_effect_as_openssh_gives_them() {
    assert_eq!(lookup("protocol").unwrap().effect, Effect::Deprecated);
    assert_eq!(
        lookup("CompressionLevel").unwrap().effect,
        Effect::Unsupported
    );
    assert_eq!(lookup("IdentityFile2").unwrap().name, "IdentityFile");
    assert!(lookup("VersionAddendum").is_some_and(|k| matches!(k.effect, Effect::Ignored(_))));
    assert_eq!(lookup("RefuseConnection").unwrap().effect, Effect::Used);
}

#[test]
fn refuse_connection_stops_with_openssh_words_whatever_its_argument() {
    let cfg = every_keyword();
    let tagged = [("Tag".to_string(), "refuse".to_string())];
    let err = cfg
        .resolve_for("web", None, None, &tagged, &exec("true"))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Refused { .. }));
    let line = 1 + include_str!("every_keyword.conf")
        .lines()
        .position(|l| l.trim_start().starts_with("RefuseConnection "))
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!("ssh config line {line}: RefuseConnection: this host is being retired: use web2")
    );
    // OpenSSH refuses whatever the argument says, even "no".
    let no = SshConfig::parse("Host web\n  RefuseConnection no\n").unwrap();
    let err = no.resolve("web", None, None).unwrap_err();
    assert_eq!(err.to_string(), "ssh config line 2: RefuseConnection: no");
    assert!(
        no.resolve("db", None, None).is_ok(),
        "only where it applies"
    );
    // On the command line: OpenSSH's "command-line line 0".
    let opt = [("RefuseConnection".to_string(), "yes".to_string())];
    let err = SshConfig::default()
        .resolve_with("web", None, None, &opt)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "command-line line 0: RefuseConnection: yes"
    );
    // Still a keyword of one argument where it does not apply.
    assert!(SshConfig::parse("Host none\n  RefuseConnection a b\n").is_err());
}

#[test]
fn match_version_sessiontype_command_and_tagged_choose_blocks() {
    let cfg = SshConfig::parse(
        "Match version OpenSSH_9*\n  User nine\n\
         Match version OpenSSH_10.*\n  Port 1010\n\
         Match sessiontype subsystem command sftp\n  User sftp\n\
         Match command \"rsync --server*\"\n  User rsync\n\
         Match sessiontype none\n  User transport\n\
         Match sessiontype shell command \"\"\n  User shell\n\
         Match tagged ops,deploy\n  User tagged\n\
         Match tagged \"\"\n  HostName untagged\n",
    )
    .unwrap();
    let user = |session: &SessionAsked, options: &[(String, String)]| {
        let got = cfg.resolve_for("h", None, None, options, session).unwrap();
        (got.user.unwrap_or_default(), got.port, got.hostname)
    };
    assert!(OPENSSH_VERSION.starts_with("OpenSSH_10."));
    let sftp = SessionAsked {
        command: "sftp".into(),
        session_type: Some(SessionType::Subsystem),
    };
    assert_eq!(user(&sftp, &[]), ("sftp".into(), 1010, "untagged".into()));
    let rsync = exec("rsync --server -logDtpre.iLsfxCIvu . /srv/");
    assert_eq!(user(&rsync, &[]).0, "rsync");
    assert_eq!(user(&SessionAsked::transport(), &[]).0, "transport");
    assert_eq!(user(&SessionAsked::default(), &[]).0, "shell");
    // An exec session no block names: no User, the tag block's aside.
    let tag = [("Tag".to_string(), "deploy".to_string())];
    assert_eq!(
        user(&exec("uptime"), &tag),
        ("tagged".into(), 1010, "h".into())
    );
    assert_eq!(user(&exec("uptime"), &[]).0, "");
    // SessionType in the files counts, unless the command line set one.
    let typed = SshConfig::parse("SessionType none\nMatch sessiontype none\n  User n\n").unwrap();
    let got = typed
        .resolve_for("h", None, None, &[], &exec("ls"))
        .unwrap();
    assert_eq!(got.user.as_deref(), Some("n"));
}
