//! Every keyword OpenSSH 10.2's client knows, what mitogen-fakessh does with
//! it, and how its arguments are taken.
//!
//! A keyword that is not here (nor an alias of one) is "Bad configuration
//! option" in a file (unless `IgnoreUnknown` names it) and on the command
//! line, as in OpenSSH.

/// What mitogen-fakessh does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// It configures our connections or sessions.
    Used,
    /// Accepted, as OpenSSH accepts it, with no effect here, for the reason
    /// given (the man page lists them).
    Ignored(Why),
    /// OpenSSH warns "Unsupported option" and ignores it; so do we.
    Unsupported,
    /// An old name OpenSSH still accepts and ignores (`oDeprecated`, with
    /// a debug message; `Protocol` silently).
    Deprecated,
    /// `Host`, `Match` and `Include`: structure, never a `-o` option.
    Structure,
}

/// Why a keyword accepted from OpenSSH has no effect here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Algorithms,
    Authentication,
    Multiplexing,
    ClientOnly,
    CommandLineOnly,
    Forwarding,
    Network,
    HostKeys,
    Banner,
}

impl Why {
    /// Every reason, in the order the man page gives them.
    pub const ALL: [Why; 9] = [
        Why::Algorithms,
        Why::Authentication,
        Why::HostKeys,
        Why::Network,
        Why::Banner,
        Why::Multiplexing,
        Why::Forwarding,
        Why::ClientOnly,
        Why::CommandLineOnly,
    ];

    /// The reason, as the man page states it.
    pub fn reason(self) -> &'static str {
        match self {
            Why::Algorithms => {
                "the ssh hop negotiates its own set of algorithms (and warns about none)"
            }
            Why::Authentication => {
                "the ssh hop offers keys and certificates, then a password or keyboard-interactive answers, as the server asks; it has no other method and no method preferences"
            }
            Why::HostKeys => {
                "host keys are checked against the known_hosts files only, by the host name and port"
            }
            Why::Network => "the ssh hop makes one plain TCP connection to HostName (or its proxy)",
            Why::Banner => "the ssh hop sends its own protocol banner",
            Why::Multiplexing => "the host already shares one connection per chain",
            Why::Forwarding => {
                "there is no X11 or tunnel-device forwarding, and forwarded Unix sockets are always created private"
            }
            Why::ClientOnly => {
                "these belong to OpenSSH's interactive client: escapes, logging, local commands"
            }
            Why::CommandLineOnly => {
                "the ssh shim takes -f, -n, -N and -s from its command line only"
            }
        }
    }
}

/// How a keyword's arguments are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Args {
    /// One word; more is "extra arguments at end of line".
    One,
    /// One or more words.
    Many,
    /// The rest of the line as it stands (commands).
    Rest,
}

/// A known keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyword {
    /// As the man page writes it.
    pub name: &'static str,
    pub effect: Effect,
    pub args: Args,
}

use Args::*;
use Effect::*;

/// The table, in the man page's order of names.
pub const KEYWORDS: &[Keyword] = &[
    k("AddKeysToAgent", Ignored(Why::Authentication), One),
    k("AddressFamily", Ignored(Why::Network), One),
    k("BatchMode", Used, One),
    k("BindAddress", Ignored(Why::Network), One),
    k("BindInterface", Ignored(Why::Network), One),
    k("CanonicalDomains", Ignored(Why::Network), Many),
    k("CanonicalizeFallbackLocal", Ignored(Why::Network), One),
    k("CanonicalizeHostname", Ignored(Why::Network), One),
    k("CanonicalizeMaxDots", Ignored(Why::Network), One),
    k("CanonicalizePermittedCNAMEs", Ignored(Why::Network), Many),
    k("CASignatureAlgorithms", Used, One),
    k("CertificateFile", Used, One),
    k("ChannelTimeout", Ignored(Why::Network), Many),
    k("CheckHostIP", Ignored(Why::HostKeys), One),
    k("Ciphers", Used, One),
    k("ClearAllForwardings", Used, One),
    k("Compression", Ignored(Why::Algorithms), One),
    k("ConnectionAttempts", Ignored(Why::Network), One),
    k("ConnectTimeout", Used, One),
    k("ControlMaster", Ignored(Why::Multiplexing), One),
    k("ControlPath", Ignored(Why::Multiplexing), One),
    k("ControlPersist", Ignored(Why::Multiplexing), One),
    k("DynamicForward", Used, One),
    k("EnableEscapeCommandline", Ignored(Why::ClientOnly), One),
    k("EnableSSHKeysign", Ignored(Why::Authentication), One),
    k("EscapeChar", Ignored(Why::ClientOnly), One),
    k("ExitOnForwardFailure", Used, One),
    k("FingerprintHash", Ignored(Why::HostKeys), One),
    k(
        "ForkAfterAuthentication",
        Ignored(Why::CommandLineOnly),
        One,
    ),
    k("ForwardAgent", Used, One),
    k("ForwardX11", Ignored(Why::Forwarding), One),
    k("ForwardX11Timeout", Ignored(Why::Forwarding), One),
    k("ForwardX11Trusted", Ignored(Why::Forwarding), One),
    k("GatewayPorts", Used, One),
    k("GlobalKnownHostsFile", Used, Many),
    k("GSSAPIAuthentication", Ignored(Why::Authentication), One),
    k("GSSAPIClientIdentity", Ignored(Why::Authentication), One),
    k(
        "GSSAPIDelegateCredentials",
        Ignored(Why::Authentication),
        One,
    ),
    k("GSSAPIKexAlgorithms", Ignored(Why::Algorithms), One),
    k("GSSAPIKeyExchange", Ignored(Why::Algorithms), One),
    k("GSSAPIRenewalForcesRekey", Ignored(Why::Algorithms), One),
    k("GSSAPIServerIdentity", Ignored(Why::Authentication), One),
    k("GSSAPITrustDns", Ignored(Why::Authentication), One),
    k("HashKnownHosts", Used, One),
    k("Host", Structure, Many),
    k("HostbasedAcceptedAlgorithms", Ignored(Why::Algorithms), One),
    k("HostbasedAuthentication", Ignored(Why::Authentication), One),
    k("HostKeyAlgorithms", Used, One),
    k("HostKeyAlias", Ignored(Why::HostKeys), One),
    k("HostName", Used, One),
    k("IdentitiesOnly", Used, One),
    k("IdentityAgent", Ignored(Why::Authentication), One),
    k("IdentityFile", Used, One),
    k("IgnoreUnknown", Used, One),
    k("Include", Structure, Many),
    k("IPQoS", Ignored(Why::Network), Many),
    k(
        "KbdInteractiveAuthentication",
        Ignored(Why::Authentication),
        One,
    ),
    k("KbdInteractiveDevices", Ignored(Why::Authentication), One),
    k("KexAlgorithms", Used, One),
    k("KnownHostsCommand", Ignored(Why::HostKeys), Rest),
    k("LocalCommand", Ignored(Why::ClientOnly), Rest),
    k("LocalForward", Used, Many),
    k("LogLevel", Ignored(Why::ClientOnly), One),
    k("LogVerbose", Ignored(Why::ClientOnly), One),
    k("MACs", Used, One),
    k("Match", Structure, Many),
    k(
        "NoHostAuthenticationForLocalhost",
        Ignored(Why::HostKeys),
        One,
    ),
    k("NumberOfPasswordPrompts", Used, One),
    k("ObscureKeystrokeTiming", Ignored(Why::ClientOnly), One),
    k("PasswordAuthentication", Ignored(Why::Authentication), One),
    k("PermitLocalCommand", Ignored(Why::ClientOnly), One),
    k("PermitRemoteOpen", Ignored(Why::Forwarding), Many),
    k("PKCS11Provider", Ignored(Why::Authentication), One),
    k("Port", Used, One),
    k(
        "PreferredAuthentications",
        Ignored(Why::Authentication),
        One,
    ),
    k("ProxyCommand", Used, Rest),
    k("ProxyJump", Used, One),
    k("ProxyUseFdpass", Ignored(Why::Network), One),
    k("PubkeyAcceptedAlgorithms", Used, One),
    k("PubkeyAuthentication", Ignored(Why::Authentication), One),
    k("RefuseConnection", Used, One),
    k("RekeyLimit", Ignored(Why::Algorithms), Many),
    k("RemoteCommand", Used, Rest),
    k("RemoteForward", Used, Many),
    k("RequestTTY", Used, One),
    k("RequiredRSASize", Used, One),
    k("RevokedHostKeys", Ignored(Why::HostKeys), One),
    k("SecurityKeyProvider", Ignored(Why::Authentication), One),
    k("SendEnv", Used, Many),
    k("ServerAliveCountMax", Used, One),
    k("ServerAliveInterval", Used, One),
    k("SessionType", Ignored(Why::CommandLineOnly), One),
    k("SetEnv", Used, Many),
    k("StdinNull", Ignored(Why::CommandLineOnly), One),
    k("StreamLocalBindMask", Ignored(Why::Forwarding), One),
    k("StreamLocalBindUnlink", Ignored(Why::Forwarding), One),
    k("StrictHostKeyChecking", Used, One),
    k("SyslogFacility", Ignored(Why::ClientOnly), One),
    k("Tag", Used, One),
    k("TCPKeepAlive", Ignored(Why::Network), One),
    k("Tunnel", Ignored(Why::Forwarding), One),
    k("TunnelDevice", Ignored(Why::Forwarding), One),
    k("UpdateHostKeys", Ignored(Why::HostKeys), One),
    k("User", Used, One),
    k("UserKnownHostsFile", Used, Many),
    k("VersionAddendum", Ignored(Why::Banner), Rest),
    k("VerifyHostKeyDNS", Ignored(Why::HostKeys), One),
    k("VisualHostKey", Ignored(Why::ClientOnly), One),
    k("WarnWeakCrypto", Ignored(Why::Algorithms), One),
    k("XAuthLocation", Ignored(Why::Forwarding), One),
    // Old names OpenSSH still takes and ignores.
    k("Cipher", Deprecated, One),
    k("FallBackToRsh", Deprecated, One),
    k("GlobalKnownHostsFile2", Deprecated, One),
    k("Protocol", Deprecated, One),
    k("RhostsAuthentication", Deprecated, One),
    k("UseRoaming", Deprecated, One),
    k("UseRsh", Deprecated, One),
    k("UsePrivilegedPort", Deprecated, One),
    k("UserKnownHostsFile2", Deprecated, One),
    // Names OpenSSH warns about as "Unsupported option".
    k("AFSTokenPassing", Unsupported, One),
    k("CompressionLevel", Unsupported, One),
    k("KerberosAuthentication", Unsupported, One),
    k("KerberosTGTPassing", Unsupported, One),
    k("RSAAuthentication", Unsupported, One),
    k("RhostsRSAAuthentication", Unsupported, One),
];

/// Other names OpenSSH takes for a keyword (lower case), and the keyword.
pub const ALIASES: &[(&str, &str)] = &[
    (
        "challengeresponseauthentication",
        "KbdInteractiveAuthentication",
    ),
    ("dsaauthentication", "PubkeyAuthentication"),
    ("hostbasedkeytypes", "HostbasedAcceptedAlgorithms"),
    ("identityfile2", "IdentityFile"),
    ("keepalive", "TCPKeepAlive"),
    ("pubkeyacceptedkeytypes", "PubkeyAcceptedAlgorithms"),
    ("skeyauthentication", "KbdInteractiveAuthentication"),
    ("smartcarddevice", "PKCS11Provider"),
    ("tisauthentication", "KbdInteractiveAuthentication"),
];

const fn k(name: &'static str, effect: Effect, args: Args) -> Keyword {
    Keyword { name, effect, args }
}

/// The keyword named `name` (case-insensitive), or the one `name` is an
/// alias of.
pub fn lookup(name: &str) -> Option<&'static Keyword> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, keyword)| keyword);
    KEYWORDS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The keywords accepted without effect for `why`, for the man page.
pub fn ignored(why: Why) -> impl Iterator<Item = &'static str> {
    KEYWORDS
        .iter()
        .filter(move |k| k.effect == Effect::Ignored(why))
        .map(|k| k.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_without_case() {
        for (i, a) in KEYWORDS.iter().enumerate() {
            assert!(
                !KEYWORDS[i + 1..]
                    .iter()
                    .any(|b| b.name.eq_ignore_ascii_case(a.name)),
                "{} twice",
                a.name
            );
        }
        assert_eq!(lookup("proxycommand").unwrap().args, Args::Rest);
        assert_eq!(lookup("SENDENV").unwrap().effect, Effect::Used);
        assert!(lookup("bogus").is_none());
        assert!(lookup("UseKeychain").is_none(), "Apple's, not OpenSSH's");
        assert!(ignored(Why::Multiplexing).any(|k| k == "ControlMaster"));
        assert_eq!(lookup("KeepAlive").unwrap().name, "TCPKeepAlive");
        assert_eq!(lookup("identityfile2").unwrap().effect, Effect::Used);
        for (alias, _) in ALIASES {
            assert!(!KEYWORDS.iter().any(|k| k.name.eq_ignore_ascii_case(alias)));
        }
        for why in Why::ALL {
            assert!(ignored(why).next().is_some(), "{why:?} gives no keyword");
        }
    }
}
