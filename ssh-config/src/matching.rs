//! When a line of ssh_config applies: `Host` pattern lists and `Match`
//! criteria, with OpenSSH's semantics.

use std::net::IpAddr;

/// The version `Match version` tests: the OpenSSH release whose client
/// configuration we read (every keyword of its ssh_config(5) is accepted),
/// so `Match version OpenSSH_10*` blocks apply to us as they would to it.
pub const OPENSSH_VERSION: &str = "OpenSSH_10.2p1";

/// The criteria that may also be written `name=argument`, as in OpenSSH.
const WITH_EQUALS: &[&str] = &[
    "host",
    "originalhost",
    "user",
    "localuser",
    "localnetwork",
    "version",
    "tagged",
    "command",
    "exec",
];

/// What is wrong with a `Match` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("unsupported Match attribute {0:?}")]
    UnsupportedAttribute(String),
    #[error("Match {0} needs an argument")]
    NeedsArgument(String),
    #[error("Match needs at least one criterion")]
    NoCriteria,
    #[error("Match all must stand alone or follow canonical/final")]
    AllNotAlone,
    #[error("{0:?} is not a network in CIDR notation")]
    BadNetwork(String),
}

/// The condition a block of lines is under: the `Host` or `Match` line that
/// opened it.
#[derive(Debug)]
pub enum Condition {
    /// `Host` patterns, matched against the name as given.
    Host(Vec<String>),
    /// `Match` criteria, all of which must hold.
    Match(Vec<Criterion>),
}

/// One `Match` criterion, perhaps negated with `!`.
#[derive(Debug)]
pub struct Criterion {
    pub negated: bool,
    pub test: Test,
}

/// What a `Match` criterion tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Test {
    All,
    /// True only after hostname canonicalization, which we never do.
    Canonical,
    /// True in the final pass over the configuration.
    Final,
    /// A command run by the shell; true if it exits 0.
    Exec(String),
    /// The destination host name, after any `HostName` so far.
    Host(String),
    /// The name as given on the command line.
    OriginalHost(String),
    /// The remote user.
    User(String),
    /// The local user.
    LocalUser(String),
    /// The value of `Tag` (or ssh's `-P`); `""` matches no tag.
    Tagged(String),
    /// Some address of an interface that is up lies in one of these networks.
    LocalNetwork(Vec<Network>),
    /// [`OPENSSH_VERSION`].
    Version(String),
    /// The session's kind: `shell`, `exec`, `subsystem` or `none`.
    SessionType(String),
    /// The remote command as given on ssh's command line (the subsystem's
    /// name for `-s`); `""` matches no command.
    Command(String),
}

/// What the criteria are tested against: the state of the evaluation at the
/// `Match` line.
pub struct Target<'a> {
    pub original_host: &'a str,
    pub host: &'a str,
    pub user: &'a str,
    pub local_user: &'a str,
    pub tag: Option<&'a str>,
    /// The remote command (words joined by spaces), `""` for none.
    pub command: &'a str,
    /// `shell`, `exec`, `subsystem` or `none`.
    pub session_type: &'a str,
    pub final_pass: bool,
    /// The addresses of local interfaces that are up, looked up only when a
    /// `localnetwork` criterion asks.
    pub local_addresses: &'a dyn Fn() -> Vec<IpAddr>,
}

/// An address block in CIDR notation (`10.0.0.0/8`, `fe80::/10`; a bare
/// address is a block of one).
#[derive(Debug, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Result<Network, MatchError> {
        let bad = || MatchError::BadNetwork(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        Ok(Network { base, prefix })
    }

    fn contains(&self, addr: &IpAddr) -> bool {
        let (base, addr, bits) = match (self.base, addr) {
            (IpAddr::V4(b), IpAddr::V4(a)) => (u32::from(b) as u128, u32::from(*a) as u128, 32),
            (IpAddr::V6(b), IpAddr::V6(a)) => (u128::from(b), u128::from(*a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (base >> shift) == (addr >> shift)
    }
}

impl Condition {
    /// Parse the arguments of a `Match` line (OpenSSH's `match_cfg_line`
    /// grammar): `all` stands alone (or after `canonical`/`final`); the
    /// others but `canonical` and `final` take one argument.
    pub fn parse_match(words: &[String]) -> Result<Condition, MatchError> {
        let mut criteria = Vec::new();
        let mut words = words.iter().cloned().peekable();
        while let Some(word) = words.next() {
            let (negated, word) = match word.strip_prefix('!') {
                Some(rest) => (true, rest.to_string()),
                None => (false, word),
            };
            // `host=web*` is `host web*` (for the criteria OpenSSH allows it).
            let (name, joined) = match word.split_once('=') {
                Some((name, arg)) if WITH_EQUALS.iter().any(|c| c.eq_ignore_ascii_case(name)) => {
                    (name.to_ascii_lowercase(), Some(arg.to_string()))
                }
                _ => (word.to_ascii_lowercase(), None),
            };
            let test = match name.as_str() {
                "all" => Test::All,
                "canonical" => Test::Canonical,
                "final" => Test::Final,
                _ => {
                    let arg = joined
                        .or_else(|| words.next())
                        .filter(|arg| !arg.starts_with('#'))
                        .filter(|arg| {
                            !arg.is_empty() || matches!(name.as_str(), "tagged" | "command")
                        })
                        .ok_or_else(|| MatchError::NeedsArgument(name.clone()))?;
                    match name.as_str() {
                        "exec" => Test::Exec(arg),
                        "host" => Test::Host(arg),
                        "originalhost" => Test::OriginalHost(arg),
                        "user" => Test::User(arg),
                        "localuser" => Test::LocalUser(arg),
                        "tagged" => Test::Tagged(arg),
                        "localnetwork" => Test::LocalNetwork(
                            arg.split(',')
                                .map(|n| Network::parse(n.trim()))
                                .collect::<Result<_, _>>()?,
                        ),
                        "version" => Test::Version(arg),
                        "sessiontype" => Test::SessionType(arg),
                        "command" => Test::Command(arg),
                        _ => return Err(MatchError::UnsupportedAttribute(name)),
                    }
                }
            };
            criteria.push(Criterion { negated, test });
        }
        if criteria.is_empty() {
            return Err(MatchError::NoCriteria);
        }
        let alls = criteria.iter().filter(|c| c.test == Test::All).count();
        let others = criteria
            .iter()
            .filter(|c| !matches!(c.test, Test::All | Test::Canonical | Test::Final))
            .count();
        if alls > 0 && (others > 0 || criteria.last().is_some_and(|c| c.test != Test::All)) {
            return Err(MatchError::AllNotAlone);
        }
        Ok(Condition::Match(criteria))
    }

    /// Whether the block applies. `exec` runs a command (only when every
    /// criterion before it held, as in OpenSSH).
    pub fn holds(&self, target: &Target<'_>, exec: &mut dyn FnMut(&str) -> bool) -> bool {
        let criteria = match self {
            Condition::Host(patterns) => return host_matches(patterns, target.original_host),
            Condition::Match(criteria) => criteria,
        };
        for c in criteria {
            let held = match &c.test {
                Test::All => true,
                Test::Canonical => false,
                Test::Final => target.final_pass,
                Test::Exec(command) => exec(command),
                Test::Host(list) => pattern_list_matches(list, target.host, false),
                Test::OriginalHost(list) => pattern_list_matches(list, target.original_host, false),
                Test::User(list) => pattern_list_matches(list, target.user, true),
                Test::LocalUser(list) => pattern_list_matches(list, target.local_user, true),
                Test::Tagged(list) => empty_or_listed(list, target.tag.unwrap_or("")),
                Test::Command(list) => empty_or_listed(list, target.command),
                Test::Version(list) => pattern_list_matches(list, OPENSSH_VERSION, true),
                Test::SessionType(list) => pattern_list_matches(list, target.session_type, true),
                Test::LocalNetwork(networks) => (target.local_addresses)()
                    .iter()
                    .any(|a| networks.iter().any(|n| n.contains(a))),
            };
            if held == c.negated {
                return false;
            }
        }
        true
    }

    /// Whether this is a `Match` naming `final`, which asks for a second
    /// pass over the configuration.
    pub fn wants_final_pass(&self) -> bool {
        matches!(self, Condition::Match(cs) if cs.iter().any(|c| c.test == Test::Final))
    }
}

/// `tagged` and `command`: an empty value matches only an empty argument
/// (`Match tagged ""`), any other the pattern list, as in OpenSSH.
fn empty_or_listed(list: &str, value: &str) -> bool {
    match value.is_empty() {
        true => list.is_empty(),
        false => pattern_list_matches(list, value, true),
    }
}

/// Whether `host` matches a comma-separated pattern list (`*`, `?`, `!`),
/// as in a known_hosts line's host field.
pub fn host_in_pattern_list(list: &str, host: &str) -> bool {
    pattern_list_matches(list, host, false)
}

/// `Host` patterns (whitespace-separated, as parsed).
pub fn host_matches(patterns: &[String], host: &str) -> bool {
    patterns_match(patterns.iter().map(String::as_str), host, false)
}

/// A `Match` argument (or a known_hosts host field): comma-separated
/// patterns.
pub fn pattern_list_matches(list: &str, name: &str, case_sensitive: bool) -> bool {
    let patterns = list.split(',').map(str::trim).filter(|p| !p.is_empty());
    patterns_match(patterns, name, case_sensitive)
}

/// OpenSSH's pattern-list rule: some positive pattern matches and no
/// `!`-negated one does.
fn patterns_match<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    name: &str,
    case_sensitive: bool,
) -> bool {
    let mut matched = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(negated) if glob(negated, name, case_sensitive) => return false,
            Some(_) => {}
            None => matched |= glob(p, name, case_sensitive),
        }
    }
    matched
}

/// ssh_config wildcards: `*` and `?`. Host names compare without case.
///
/// Iterative, remembering only the last `*`: a later `*` can stand in for
/// anything an earlier one would, so at most O(pattern × name) steps. (A
/// naive recursion is exponential in the number of stars: a known_hosts
/// line of forty `*` took the fuzzer's 20 minutes.)
fn glob(pattern: &str, name: &str, case_sensitive: bool) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let same = |a: u8, b: u8| a == b || (!case_sensitive && a.eq_ignore_ascii_case(&b));
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in the name it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || same(c, n[ni]) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last star take one more byte, and go on from there.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(host: &'a str, user: &'a str) -> Target<'a> {
        Target {
            original_host: "alias",
            host,
            user,
            local_user: "me",
            tag: None,
            command: "",
            session_type: "shell",
            final_pass: false,
            local_addresses: &|| LOCAL.to_vec(),
        }
    }

    const LOCAL: [IpAddr; 2] = [
        IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];

    fn holds(line: &str, t: &Target<'_>) -> bool {
        Condition::parse_match(&crate::split::words(line).unwrap())
            .unwrap()
            .holds(t, &mut |cmd| cmd == "true")
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.example.org", "web1.EXAMPLE.org", true),
            ("**a**b", "xxaxxb", true),
            ("*a*a*a", "aa", false),
            ("a*", "a", true),
            ("?*", "", false),
        ] {
            assert_eq!(glob(p, n, false), want, "{p} ~ {n}");
        }
        assert!(!glob("abc", "ABC", true));
    }

    #[test]
    fn many_stars_take_no_time() {
        // Found by the known_hosts fuzz target: the recursive matcher was
        // exponential in the stars and this never finished.
        let pattern = format!("{}?ssh-", "*".repeat(40));
        assert!(!glob(&pattern, &"a".repeat(200), false));
        let pattern = format!("{}b", "*a".repeat(60));
        assert!(glob(&pattern, &format!("{}b", "a".repeat(120)), false));
    }

    #[test]
    fn match_criteria() {
        let t = target("web1.example.org", "deploy");
        assert!(holds("all", &t));
        assert!(holds("host *.example.org", &t));
        assert!(holds("host other,web?.example.org", &t));
        assert!(!holds("host *.example.org,!web1.*", &t));
        assert!(holds("!host db*", &t));
        assert!(holds("host *.example.org user deploy", &t));
        assert!(!holds("host *.example.org user Deploy", &t));
        assert!(holds("originalhost alias localuser me", &t));
        assert!(holds("exec \"true\"", &t));
        assert!(!holds("exec false", &t));
        assert!(!holds("final", &t));
        assert!(!holds("canonical all", &t));
        assert!(!holds("tagged x", &t));
        assert!(holds("localnetwork 192.168.0.0/16,10.0.0.0/8", &t));
        assert!(holds("localnetwork 10.1.2.3", &t));
        assert!(holds("localnetwork ::1/128", &t));
        assert!(holds("localnetwork 0.0.0.0/0", &t));
        assert!(!holds("localnetwork 10.1.2.0/31", &t));
        assert!(!holds("localnetwork fe80::/10", &t));
    }

    #[test]
    fn exec_runs_only_after_earlier_criteria_held() {
        let c = Condition::parse_match(&crate::split::words("host nomatch exec true").unwrap())
            .unwrap();
        let mut ran = false;
        let t = target("h", "u");
        assert!(!c.holds(&t, &mut |_| {
            ran = true;
            true
        },));
        assert!(!ran);
    }

    #[test]
    fn bad_match_lines_are_errors() {
        for bad in [
            "",
            "host",
            "all host x",
            "bogus x",
            "exec \"unbalanced",
            "localnetwork 10.0.0.0/33",
            "localnetwork 10.0.0.0/8,office",
        ] {
            assert!(
                crate::split::words(bad)
                    .map_err(|_| ())
                    .and_then(|w| Condition::parse_match(&w).map_err(|_| ()))
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(Condition::parse_match(&crate::split::words("final all").unwrap()).is_ok());
    }

    #[test]
    fn version_sessiontype_command_and_tagged() {
        let mut t = target("h", "u");
        assert!(holds("version OpenSSH_10*", &t));
        assert!(holds("version=OpenSSH_10.2p1", &t));
        assert!(!holds("version OpenSSH_9*", &t));
        assert!(holds("!version OpenSSH_8*,OpenSSH_9*", &t));
        // No command, no tag: only the empty argument matches.
        assert!(holds("sessiontype shell command \"\" tagged \"\"", &t));
        assert!(holds("command= tagged=", &t));
        assert!(!holds("command *", &t));
        assert!(!holds("tagged *", &t));
        t.command = "rsync --server -logDtpre.iLsfxCIvu . /srv";
        t.session_type = "exec";
        assert!(holds("command \"rsync --server*\" sessiontype exec", &t));
        assert!(holds("command=rsync*,git-*", &t));
        assert!(!holds("command \"\"", &t));
        assert!(!holds("command git-*", &t));
        assert!(!holds("sessiontype shell,subsystem", &t));
        assert!(holds("!sessiontype shell,subsystem", &t));
        assert!(!holds("command RSYNC*", &t), "commands compare with case");
        t.command = "sftp";
        t.session_type = "subsystem";
        assert!(holds("sessiontype subsystem command sftp", &t));
        t.session_type = "none";
        assert!(holds("sessiontype none", &t));
        t.tag = Some("deploy");
        assert!(holds("tagged deploy,ops", &t));
        assert!(holds("tagged=dep*", &t));
        assert!(!holds("tagged \"\"", &t));
        assert!(!holds("tagged Deploy", &t));
    }

    #[test]
    fn empty_arguments_only_for_tagged_and_command() {
        for bad in [
            "host \"\"",
            "user=",
            "version \"\"",
            "sessiontype \"\"",
            "exec=",
            "tagged",
        ] {
            assert!(
                Condition::parse_match(&crate::split::words(bad).unwrap()).is_err(),
                "{bad:?}"
            );
        }
    }
}
