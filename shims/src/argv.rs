//! OpenSSH-compatible command-line parsing.
//!
//! A small hand-written getopt, bug-compatible with OpenSSH 9.x: POSIX option
//! clusters (`-vvT`), attached values (`-p2222`, `-oPort=22`), `--`, and
//! parsing that stops at the first non-option. Like OpenSSH, options directly
//! after the destination are parsed too (`ssh host -l user cmd`), but the first
//! word that is not an option starts the command, and everything from there on
//! belongs to it (`host rsync --server ...`). For `-o`, the first value of a
//! key wins; `-A` and `-a` set agent forwarding outright, whatever `-o`
//! says (scp passes `-A -oForwardAgent=no` for `scp -A`, and the agent is
//! forwarded).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Flags that take no value (OpenSSH 9.2 plus the historical `-1`/`-2`).
const FLAGS: &str = "1246AaCfGgKkMNnqsTtVvXxYy";
/// Options that take a value.
const VALUE_OPTIONS: &str = "BbcDEeFIiJLlmOoPpQRSWw";

/// OpenSSH's usage text, printed on any parse error.
pub const USAGE: &str = "\
usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface]
           [-b bind_address] [-c cipher_spec] [-D [bind_address:]port]
           [-E log_file] [-e escape_char] [-F configfile] [-I pkcs11]
           [-i identity_file] [-J destination] [-L address]
           [-l login_name] [-m mac_spec] [-O ctl_cmd] [-o option] [-P tag]
           [-p port] [-Q query_option] [-R address] [-S ctl_path]
           [-W host:port] [-w local_tun[:remote_tun]] destination
           [command [argument ...]]";

/// A parse failure; `Display` gives OpenSSH's wording.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("unknown option -- {0}")]
    UnknownOption(char),
    #[error("option requires an argument -- {0}")]
    MissingValue(char),
    #[error("no destination given")]
    NoDestination,
    #[error("Bad port '{0}'")]
    BadPort(String),
    #[error(transparent)]
    Option(#[from] ssh_config::ConfigError),
    #[error("hostname contains invalid characters")]
    InvalidHostname,
    #[error("remote username contains invalid characters")]
    InvalidUser,
    #[error("the argument of -{0} is not valid UTF-8")]
    NotUtf8(char),
    #[error(transparent)]
    Forward(#[from] crate::forward::spec::SpecError),
    #[error("stdio forward already specified")]
    StdioTwice,
    #[error("Invalid multiplex command.")]
    InvalidMultiplexCommand,
    #[error("Unknown cipher type '{0}'")]
    UnknownCipher(String),
    #[error("Unknown mac type '{0}'")]
    UnknownMac(String),
}

impl ParseError {
    /// Whether OpenSSH follows this error with the usage text.
    pub fn wants_usage(&self) -> bool {
        matches!(
            self,
            ParseError::UnknownOption(_) | ParseError::MissingValue(_) | ParseError::NoDestination
        )
    }
}

/// Everything the shim needs from an ssh command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshInvocation {
    /// The destination word as given (`user@host`, `host`, `ssh://...`).
    pub destination: String,
    /// Host name from the destination.
    pub host: String,
    /// Effective login: `-l` or `-oUser` (first wins), else `user@`.
    pub user: Option<String>,
    /// Effective port: `-p` or `-oPort` (first wins), else from `ssh://`.
    pub port: Option<u16>,
    /// Command words after the destination, as bytes: OpenSSH passes any
    /// byte of them on.
    pub command: Vec<Vec<u8>>,
    /// `-s`: the command names a subsystem.
    pub subsystem: bool,
    /// `-n`: stdin from /dev/null.
    pub stdin_null: bool,
    /// Count of `-t`.
    pub tty_force: u8,
    /// `-T`.
    pub no_tty: bool,
    /// Count of `-v`.
    pub verbose: u8,
    /// `-q`.
    pub quiet: bool,
    /// `-E FILE`.
    pub log_file: Option<String>,
    /// `-F FILE`.
    pub config_file: Option<String>,
    /// `-G`: print the configuration and exit.
    pub print_config: bool,
    /// `-V`: print the version and exit.
    pub version: bool,
    /// `-o` options in order; look-ups take the first of a key.
    pub options: Vec<(String, String)>,
    /// `-L`, `-R`, `-D` (checked as given), in order.
    pub local_forwards: Vec<crate::forward::spec::Forward>,
    pub remote_forwards: Vec<crate::forward::spec::Forward>,
    pub dynamic_forwards: Vec<crate::forward::spec::Listen>,
    /// `-W host:port`.
    pub stdio_forward: Option<(String, u16)>,
    /// `-f`: go to the background once the session or the forwards are up.
    pub background: bool,
    /// `-N`: no command.
    pub no_command: bool,
    /// `-A` or `-a`, the last given.
    pub forward_agent: Option<bool>,
    /// Options this tool refuses (master mode, ...), first seen.
    pub unsupported: Option<String>,
    /// Options accepted but without effect here, for `-v` diagnostics.
    pub ignored: Vec<String>,
    /// `-c` and `-m` (the last of each): they beat any `Ciphers` or
    /// `MACs`, from `-o` or a file, as in OpenSSH.
    pub cipher_spec: Option<String>,
    pub mac_spec: Option<String>,
    /// `-O check|exit|stop`: answered by the host about its context.
    pub master: Option<proto::session::MasterCommand>,
}

impl SshInvocation {
    /// First value given for `-o key` (keys are case-insensitive).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `key`, in order (for additive keys like SendEnv).
    pub fn option_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The remote command as sshd receives it: words joined by single spaces.
    pub fn command_line(&self) -> Vec<u8> {
        self.command.join(&b' ')
    }

    /// What `Match command` and `Match sessiontype` test: the command
    /// words joined (lossy), `-s`, and `-N`/`-W` (no session).
    pub fn session_asked(&self) -> ssh_config::SessionAsked {
        use ssh_config::SessionType;
        let session_type = if self.subsystem {
            Some(SessionType::Subsystem)
        } else if self.no_command || self.stdio_forward.is_some() {
            Some(SessionType::NoSession)
        } else {
            None
        };
        ssh_config::SessionAsked {
            command: String::from_utf8_lossy(&self.command_line()).into_owned(),
            session_type,
        }
    }

    /// The command words as text (lossy), for messages and tests.
    pub fn command_words(&self) -> Vec<String> {
        self.command
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }
}

/// Parse ssh's arguments (without argv\[0\]). The destination's host and
/// a user given here are checked as OpenSSH checks them, so no name that
/// a shell would take as syntax ever reaches a `%h` or `%r`.
pub fn parse(args: &[OsString]) -> Result<SshInvocation, ParseError> {
    let mut inv = SshInvocation::default();
    let mut login: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut i = 0;
    let mut terminated = false;
    let mut destination: Option<&[u8]> = None;
    loop {
        while i < args.len() {
            let arg = args[i].as_bytes();
            if arg == b"--" {
                i += 1;
                terminated = true;
                break;
            }
            if !arg.starts_with(b"-") || arg == b"-" {
                break;
            }
            let mut j = 1;
            while j < arg.len() {
                let c = char::from(arg[j]);
                if FLAGS.contains(c) {
                    apply_flag(&mut inv, c);
                    if inv.version {
                        // OpenSSH prints its version as soon as it sees -V.
                        return Ok(inv);
                    }
                    j += 1;
                } else if VALUE_OPTIONS.contains(c) {
                    let value = if j + 1 < arg.len() {
                        &arg[j + 1..]
                    } else {
                        i += 1;
                        args.get(i)
                            .map(|a| a.as_bytes())
                            .ok_or(ParseError::MissingValue(c))?
                    };
                    let value = std::str::from_utf8(value)
                        .map_err(|_| ParseError::NotUtf8(c))?
                        .to_string();
                    apply_value(&mut inv, &mut login, &mut port, c, value)?;
                    break;
                } else {
                    return Err(ParseError::UnknownOption(c));
                }
            }
            i += 1;
        }
        if destination.is_none() {
            let Some(dest) = args.get(i) else {
                return Err(ParseError::NoDestination);
            };
            destination = Some(dest.as_bytes());
            i += 1;
            if !terminated && i < args.len() {
                continue;
            }
        }
        break;
    }
    inv.command = args[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
    // `-c` and `-m` set the option outright: ahead of every `-o`.
    if let Some(spec) = inv.mac_spec.clone() {
        inv.options.insert(0, ("MACs".into(), spec));
    }
    if let Some(spec) = inv.cipher_spec.clone() {
        inv.options.insert(0, ("Ciphers".into(), spec));
    }
    let destination = destination.unwrap_or_default();
    inv.destination = std::str::from_utf8(destination)
        .map_err(|_| ParseError::InvalidHostname)?
        .to_string();
    let (dest_user, host, dest_port) = split_destination(&inv.destination)?;
    inv.host = host;
    inv.user = login.or(dest_user);
    inv.port = port.or(dest_port);
    if inv.host.is_empty() {
        return Err(ParseError::NoDestination);
    }
    if !ssh_config::valid_hostname(&inv.host) {
        return Err(ParseError::InvalidHostname);
    }
    if inv
        .user
        .as_deref()
        .is_some_and(|u| !ssh_config::valid_user(u))
    {
        return Err(ParseError::InvalidUser);
    }
    Ok(inv)
}

fn apply_flag(inv: &mut SshInvocation, c: char) {
    match c {
        'G' => inv.print_config = true,
        'V' => inv.version = true,
        'n' => inv.stdin_null = true,
        'q' => inv.quiet = true,
        's' => inv.subsystem = true,
        't' => inv.tty_force = inv.tty_force.saturating_add(1),
        'T' => inv.no_tty = true,
        'v' => inv.verbose = inv.verbose.saturating_add(1),
        'f' => inv.background = true,
        'M' => refuse(inv, "-M (master mode)"),
        'N' => inv.no_command = true,
        // As OpenSSH: the flags set the option outright (the last one
        // wins), over any `-o ForwardAgent`.
        'A' => inv.forward_agent = Some(true),
        'a' => inv.forward_agent = Some(false),
        _ => inv.ignored.push(format!("-{c}")),
    }
}

fn refuse(inv: &mut SshInvocation, what: &str) {
    if inv.unsupported.is_none() {
        inv.unsupported = Some(what.to_string());
    }
}

fn apply_value(
    inv: &mut SshInvocation,
    login: &mut Option<String>,
    port: &mut Option<u16>,
    c: char,
    value: String,
) -> Result<(), ParseError> {
    match c {
        'l' => {
            login.get_or_insert(value);
        }
        'p' => {
            let p = parse_port(&value)?;
            port.get_or_insert(p);
        }
        'o' => {
            let ignore = inv.option("IgnoreUnknown").map(str::to_string);
            let Some((key, val)) = ssh_config::options::check(&value, ignore.as_deref())? else {
                return Ok(());
            };
            let first_word = || {
                ssh_config::split::words(&val)
                    .ok()
                    .and_then(|w| w.into_iter().next())
                    .unwrap_or_default()
            };
            match key.to_ascii_lowercase().as_str() {
                "user" => {
                    login.get_or_insert(first_word());
                }
                "port" => {
                    let p = parse_port(&first_word())?;
                    port.get_or_insert(p);
                }
                _ => {}
            }
            inv.options.push((key, val));
        }
        // As OpenSSH treats them: -i adds an IdentityFile, -J sets ProxyJump.
        'i' => inv.options.push(("IdentityFile".into(), value)),
        'J' => inv.options.push(("ProxyJump".into(), value)),
        // -P sets the tag unless a Tag came first, as a `-o Tag` here would.
        'P' => inv.options.push(("Tag".into(), value)),
        'E' => inv.log_file = Some(value),
        'F' => inv.config_file = Some(value),
        'L' => inv
            .local_forwards
            .push(crate::forward::spec::parse_forward(&value, false)?),
        'R' => inv
            .remote_forwards
            .push(crate::forward::spec::parse_forward(&value, true)?),
        'D' => inv
            .dynamic_forwards
            .push(crate::forward::spec::parse_dynamic(&value)?),
        'W' => {
            if inv.stdio_forward.is_some() {
                return Err(ParseError::StdioTwice);
            }
            inv.stdio_forward = Some(crate::forward::spec::parse_stdio(&value)?);
        }
        // As OpenSSH checks them: `-c` takes `+` and `^` lists, `-m` a
        // plain list; a name our client does not implement is unknown.
        'c' => {
            let plain = !value.starts_with('-');
            if !plain || ssh_config::algorithms::check_line("ciphers", &value).is_some() {
                return Err(ParseError::UnknownCipher(value));
            }
            inv.cipher_spec = Some(value);
        }
        'm' => {
            let plain = !value.starts_with(['-', '+', '^']);
            if !plain || ssh_config::algorithms::check_line("macs", &value).is_some() {
                return Err(ParseError::UnknownMac(value));
            }
            inv.mac_spec = Some(value);
        }
        'w' => refuse(inv, "-w (tunnel forwarding)"),
        'O' => {
            use proto::session::MasterCommand;
            inv.master = Some(match value.as_str() {
                "check" => MasterCommand::Check,
                "exit" => MasterCommand::Exit,
                "stop" => MasterCommand::Stop,
                // OpenSSH's other commands: refused by name.
                "forward" | "cancel" | "proxy" | "conninfo" | "channels" => {
                    refuse(inv, &format!("-O {value}"));
                    return Ok(());
                }
                _ => return Err(ParseError::InvalidMultiplexCommand),
            });
        }
        'Q' => refuse(inv, "-Q (query)"),
        _ => inv.ignored.push(format!("-{c} {value}")),
    }
    Ok(())
}

fn parse_port(value: &str) -> Result<u16, ParseError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ParseError::BadPort(value.to_string())),
    }
}

/// Split `[user@]host`, `ssh://[user@]host[:port]` and bracketed IPv6.
fn split_destination(dest: &str) -> Result<(Option<String>, String, Option<u16>), ParseError> {
    if let Some(rest) = dest.strip_prefix("ssh://") {
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = match rest.rfind('@') {
            Some(at) => (Some(rest[..at].to_string()), &rest[at + 1..]),
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            match inner.split_once(']') {
                Some((h, tail)) => (h.to_string(), tail.strip_prefix(':')),
                None => (inner.to_string(), None),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = port.map(parse_port).transpose()?;
        return Ok((user, host, port));
    }
    let (user, host) = match dest.rfind('@') {
        Some(at) => (Some(dest[..at].to_string()), &dest[at + 1..]),
        None => (None, dest),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((user, host.to_string(), None))
}

/// Fuzzing entry point: `data` split on NUL bytes is an argv.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    use std::os::unix::ffi::OsStringExt;
    let argv: Vec<OsString> = data
        .split(|b| *b == 0)
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();
    if let Ok(inv) = parse(&argv) {
        // The command is a suffix of argv, verbatim.
        let tail: Vec<Vec<u8>> = argv[argv.len() - inv.command.len()..]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        assert_eq!(tail, inv.command);
        assert!(ssh_config::valid_hostname(&inv.host) || inv.version);
    }
}

#[cfg(test)]
mod tests;
