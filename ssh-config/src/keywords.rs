//! Every keyword OpenSSH 9.x's client knows, what mitogen-fakessh does with
//! it, and how its arguments are taken.
//!
//! A keyword that is not here is "Bad configuration option" in a file (unless
//! `IgnoreUnknown` names it) and on the command line, as in OpenSSH.

/// What mitogen-fakessh does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// It configures our connections or sessions.
    Used,
    /// Accepted, as OpenSSH accepts it, with no effect here (listed in the
    /// man page).
    Ignored,
    /// OpenSSH warns "Unsupported option" and ignores it; so do we.
    Unsupported,
    /// An old name OpenSSH still accepts silently.
    Deprecated,
    /// `Host`, `Match` and `Include`: structure, never a `-o` option.
    Structure,
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
    k("AddKeysToAgent", Ignored, One),
    k("AddressFamily", Ignored, One),
    k("BatchMode", Used, One),
    k("BindAddress", Ignored, One),
    k("BindInterface", Ignored, One),
    k("CanonicalDomains", Ignored, Many),
    k("CanonicalizeFallbackLocal", Ignored, One),
    k("CanonicalizeHostname", Ignored, One),
    k("CanonicalizeMaxDots", Ignored, One),
    k("CanonicalizePermittedCNAMEs", Ignored, Many),
    k("CASignatureAlgorithms", Ignored, One),
    k("CertificateFile", Used, One),
    k("ChannelTimeout", Ignored, Many),
    k("CheckHostIP", Ignored, One),
    k("Ciphers", Used, One),
    k("ClearAllForwardings", Used, One),
    k("Compression", Ignored, One),
    k("ConnectionAttempts", Ignored, One),
    k("ConnectTimeout", Used, One),
    k("ControlMaster", Ignored, One),
    k("ControlPath", Ignored, One),
    k("ControlPersist", Ignored, One),
    k("DynamicForward", Used, One),
    k("EnableEscapeCommandline", Ignored, One),
    k("EnableSSHKeysign", Ignored, One),
    k("EscapeChar", Ignored, One),
    k("ExitOnForwardFailure", Used, One),
    k("FingerprintHash", Ignored, One),
    k("ForkAfterAuthentication", Ignored, One),
    k("ForwardAgent", Used, One),
    k("ForwardX11", Ignored, One),
    k("ForwardX11Timeout", Ignored, One),
    k("ForwardX11Trusted", Ignored, One),
    k("GatewayPorts", Used, One),
    k("GlobalKnownHostsFile", Used, Many),
    k("GSSAPIAuthentication", Ignored, One),
    k("GSSAPIClientIdentity", Ignored, One),
    k("GSSAPIDelegateCredentials", Ignored, One),
    k("GSSAPIKexAlgorithms", Ignored, One),
    k("GSSAPIKeyExchange", Ignored, One),
    k("GSSAPIRenewalForcesRekey", Ignored, One),
    k("GSSAPIServerIdentity", Ignored, One),
    k("GSSAPITrustDns", Ignored, One),
    k("HashKnownHosts", Used, One),
    k("Host", Structure, Many),
    k("HostbasedAcceptedAlgorithms", Ignored, One),
    k("HostbasedAuthentication", Ignored, One),
    k("HostKeyAlgorithms", Used, One),
    k("HostKeyAlias", Ignored, One),
    k("HostName", Used, One),
    k("IdentitiesOnly", Used, One),
    k("IdentityAgent", Ignored, One),
    k("IdentityFile", Used, One),
    k("IgnoreUnknown", Used, One),
    k("Include", Structure, Many),
    k("IPQoS", Ignored, Many),
    k("KbdInteractiveAuthentication", Ignored, One),
    k("KbdInteractiveDevices", Ignored, One),
    k("KexAlgorithms", Used, One),
    k("KnownHostsCommand", Ignored, Rest),
    k("LocalCommand", Ignored, Rest),
    k("LocalForward", Used, Many),
    k("LogLevel", Ignored, One),
    k("LogVerbose", Ignored, One),
    k("MACs", Used, One),
    k("Match", Structure, Many),
    k("NoHostAuthenticationForLocalhost", Ignored, One),
    k("NumberOfPasswordPrompts", Used, One),
    k("ObscureKeystrokeTiming", Ignored, One),
    k("PasswordAuthentication", Ignored, One),
    k("PermitLocalCommand", Ignored, One),
    k("PermitRemoteOpen", Ignored, Many),
    k("PKCS11Provider", Ignored, One),
    k("Port", Used, One),
    k("PreferredAuthentications", Ignored, One),
    k("ProxyCommand", Used, Rest),
    k("ProxyJump", Used, One),
    k("ProxyUseFdpass", Ignored, One),
    k("PubkeyAcceptedAlgorithms", Ignored, One),
    k("PubkeyAuthentication", Ignored, One),
    k("RekeyLimit", Ignored, Many),
    k("RemoteCommand", Used, Rest),
    k("RemoteForward", Used, Many),
    k("RequestTTY", Used, One),
    k("RequiredRSASize", Ignored, One),
    k("RevokedHostKeys", Ignored, One),
    k("SecurityKeyProvider", Ignored, One),
    k("SendEnv", Used, Many),
    k("ServerAliveCountMax", Used, One),
    k("ServerAliveInterval", Used, One),
    k("SessionType", Ignored, One),
    k("SetEnv", Used, Many),
    k("StdinNull", Ignored, One),
    k("StreamLocalBindMask", Ignored, One),
    k("StreamLocalBindUnlink", Ignored, One),
    k("StrictHostKeyChecking", Used, One),
    k("SyslogFacility", Ignored, One),
    k("Tag", Used, One),
    k("TCPKeepAlive", Ignored, One),
    k("Tunnel", Ignored, One),
    k("TunnelDevice", Ignored, One),
    k("UpdateHostKeys", Ignored, One),
    k("User", Used, One),
    k("UserKnownHostsFile", Used, Many),
    k("VerifyHostKeyDNS", Ignored, One),
    k("VisualHostKey", Ignored, One),
    k("XAuthLocation", Ignored, One),
    // Old names OpenSSH still takes.
    k("ChallengeResponseAuthentication", Deprecated, One),
    k("DSAAuthentication", Deprecated, One),
    k("HostbasedKeyTypes", Deprecated, One),
    k("PubkeyAcceptedKeyTypes", Deprecated, One),
    k("SkeyAuthentication", Deprecated, One),
    k("TISAuthentication", Deprecated, One),
    k("FallBackToRsh", Deprecated, One),
    k("GlobalKnownHostsFile2", Deprecated, One),
    k("UserKnownHostsFile2", Deprecated, One),
    k("RhostsAuthentication", Deprecated, One),
    k("UseRoaming", Deprecated, One),
    k("UseRsh", Deprecated, One),
    k("UsePrivilegedPort", Deprecated, One),
    k("Protocol", Deprecated, One),
    k("Cipher", Deprecated, One),
    k("IdentityFile2", Deprecated, One),
    k("SmartcardDevice", Deprecated, One),
    // Names OpenSSH warns about as "Unsupported option".
    k("AFSTokenPassing", Unsupported, One),
    k("CompressionLevel", Unsupported, One),
    k("KerberosAuthentication", Unsupported, One),
    k("KerberosTGTPassing", Unsupported, One),
    k("RSAAuthentication", Unsupported, One),
    k("RhostsRSAAuthentication", Unsupported, One),
];

const fn k(name: &'static str, effect: Effect, args: Args) -> Keyword {
    Keyword { name, effect, args }
}

/// The keyword named `name` (case-insensitive).
pub fn lookup(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The keywords accepted without effect, for the man page.
pub fn ignored() -> impl Iterator<Item = &'static str> {
    KEYWORDS
        .iter()
        .filter(|k| k.effect == Effect::Ignored)
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
        assert!(ignored().any(|k| k == "ControlMaster"));
    }
}
