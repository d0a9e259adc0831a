use super::*;

const SAMPLE: &str = "
# comment
Host web*  !web-old
HostName 10.0.0.%h
User deploy
Port=2222
IdentityFile ~/.ssh/id_web
StrictHostKeyChecking accept-new
Host bastion
HostName bastion.example.org
ProxyJump none
Match host foo
User nobody
Host *
User fallback
IdentityFile %d/.ssh/id_ed25519
ServerAliveInterval 10
UserKnownHostsFile /tmp/kh1 /tmp/kh2
";

#[test]
fn first_value_wins_and_patterns_apply() {
    let cfg = SshConfig::parse(SAMPLE).unwrap();
    let web = cfg.resolve("web1", None, None).unwrap();
    assert_eq!(web.user.as_deref(), Some("deploy"));
    assert_eq!(web.port, 2222);
    assert_eq!(web.hostname, "10.0.0.web1");
    assert_eq!(web.identity_files.len(), 2);
    assert_eq!(
        web.strict_host_key_checking,
        StrictHostKeyChecking::AcceptNew
    );
    assert_eq!(web.server_alive_interval, Some(Duration::from_secs(10)));
    assert_eq!(
        web.user_known_hosts_files,
        vec![PathBuf::from("/tmp/kh1"), PathBuf::from("/tmp/kh2")]
    );
    let old = cfg.resolve("web-old", Some("me"), Some(22)).unwrap();
    assert_eq!(old.user.as_deref(), Some("me"));
    assert_eq!(old.hostname, "web-old");
    let b = cfg.resolve("bastion", None, None).unwrap();
    assert_eq!(b.proxy_jump, None);
    assert_eq!(b.user.as_deref(), Some("fallback"));
    assert_eq!(b.strict_host_key_checking, StrictHostKeyChecking::Yes);
}

#[test]
fn bad_values_are_errors() {
    let cfg =
        SshConfig::parse("Host x\n Port abc\nHost y\n StrictHostKeyChecking maybe\n").unwrap();
    assert!(cfg.resolve("x", None, None).is_err());
    assert!(cfg.resolve("y", None, None).is_err());
}

#[test]
fn match_sees_the_hostname_and_user_obtained_so_far() {
    let cfg = SshConfig::parse(
        "
Host short
HostName %h.corp.example
Match host *.corp.example !user admin
User corp
Port 2200
Match originalhost short user corp
IdentityFile /keys/corp
Match host *.corp.example
User too-late
",
    )
    .unwrap();
    let c = cfg.resolve("short", None, None).unwrap();
    assert_eq!(c.hostname, "short.corp.example");
    assert_eq!((c.user.as_deref(), c.port), (Some("corp"), 2200));
    assert_eq!(c.identity_files[0], PathBuf::from("/keys/corp"));
    // A user from the command line is the one `Match user` sees.
    let r = cfg.resolve("short", Some("admin"), None).unwrap();
    assert_eq!((r.user.as_deref(), r.port), (Some("admin"), 22));
    assert!(
        r.identity_files
            .iter()
            .all(|f| f != Path::new("/keys/corp"))
    );
    let other = cfg.resolve("elsewhere", None, None).unwrap();
    assert_eq!(other.user, None);
}

#[test]
fn match_final_applies_in_a_second_pass_after_everything_else() {
    let cfg = SshConfig::parse(
        "
Match final
User from-final
Port 2022
Host h
User from-host
",
    )
    .unwrap();
    let c = cfg.resolve("h", None, None).unwrap();
    // The first pass obtained `User from-host`; the final pass adds only
    // what was still unset.
    assert_eq!((c.user.as_deref(), c.port), (Some("from-host"), 2022));
}

#[test]
fn match_exec_runs_with_tokens_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let cfg = SshConfig::parse(&format!(
        "Match exec \"echo %h %n %p > {m}; test %h = real.example\"\n  User by-exec\nHost *\n  HostName real.example\n",
        m = marker.display()
    ))
    .unwrap();
    // At the Match line no HostName is obtained yet: %h is the alias.
    let c = cfg.resolve("h", None, None).unwrap();
    assert_eq!(c.user, None);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "h h 22\n");
}

#[test]
fn included_files_count_where_the_include_stands() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("hosts.conf");
    std::fs::write(&inc, "Host web\n  HostName 192.0.2.7\n  User deploy\n").unwrap();
    let cfg = SshConfig::parse(&format!(
        "Host web\n  Port 2222\nInclude {}\nHost *\n  User nobody\n",
        inc.display()
    ))
    .unwrap();
    let c = cfg.resolve("web", None, None).unwrap();
    assert_eq!(c.hostname, "192.0.2.7");
    assert_eq!((c.user.as_deref(), c.port), (Some("deploy"), 2222));
    // Inside a block that does not apply, the included file is inert.
    let cfg = SshConfig::parse(&format!("Host other\nInclude {}\n", inc.display())).unwrap();
    assert_eq!(cfg.resolve("web", None, None).unwrap().hostname, "web");
}

#[test]
fn command_line_options_come_before_the_files() {
    let cfg =
        SshConfig::parse("Host h\n  IdentityFile /cfg/key\n  Port 2200\n  User cfg\n").unwrap();
    let opts = [
        ("IdentityFile".to_string(), "/cli/key".to_string()),
        (
            "StrictHostKeyChecking".to_string(),
            "accept-new".to_string(),
        ),
        ("Port".to_string(), "2222".to_string()),
    ];
    let c = cfg.resolve_with("h", None, None, &opts).unwrap();
    assert_eq!(
        c.identity_files,
        [PathBuf::from("/cli/key"), PathBuf::from("/cfg/key")]
    );
    assert_eq!(c.strict_host_key_checking, StrictHostKeyChecking::AcceptNew);
    assert_eq!((c.port, c.user.as_deref()), (2222, Some("cfg")));
}

#[test]
fn proxy_jump_and_proxy_command_exclude_each_other() {
    let cfg = SshConfig::parse(
        "Host a\n  ProxyCommand ssh -W %h:%p gw\nHost b\n  HostName b.example\n  Port 2022\n  ProxyJump j\nHost *\n  ProxyJump k\n  ProxyCommand nc %h %p\n",
    )
    .unwrap();
    let a = cfg.resolve("a", None, None).unwrap();
    assert_eq!(
        (a.proxy_jump.as_deref(), a.proxy_command.as_deref()),
        (None, Some("ssh -W a:22 gw"))
    );
    let b = cfg.resolve("b", None, None).unwrap();
    assert_eq!(
        (b.proxy_jump.as_deref(), b.proxy_command),
        (Some("j"), None)
    );
    let c = cfg.resolve("c", None, None).unwrap();
    assert_eq!(
        (c.proxy_jump.as_deref(), c.proxy_command),
        (Some("k"), None)
    );
    let none = SshConfig::parse("Host *\n  ProxyCommand none\n  ProxyJump j\n").unwrap();
    let n = none.resolve("x", None, None).unwrap();
    assert_eq!((n.proxy_jump, n.proxy_command), (None, None));
}
