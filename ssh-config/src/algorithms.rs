//! The crypto policy one destination gets: `KexAlgorithms`, `Ciphers`,
//! `MACs`, `HostKeyAlgorithms`, `PubkeyAcceptedAlgorithms`,
//! `CASignatureAlgorithms` and `RequiredRSASize`, read as OpenSSH reads
//! them.
//!
//! A list replaces our default; `+list` appends to it, `^list` puts its
//! names first, `-list` removes the default's names that match its patterns
//! (`*` and `?`, as OpenSSH's `match_filter_denylist`). A name OpenSSH does
//! not know is refused where the line is read, in OpenSSH's words (`Bad
//! SSH2 cipher spec 'foo'.`). A name OpenSSH knows but our client (russh)
//! does not implement (`sntrup761x25519-sha512`, the `umac` MACs, security
//! keys) is accepted and left out of what we offer: we offer a subset of
//! the policy, never anything outside it, and a list left with none of
//! ours fails before connecting (`HostConfig::unimplemented_policy`).

use crate::matching::pattern_list_matches;

/// Key exchange methods our client implements, best first: the default.
/// `mlkem768x25519-sha256` (post-quantum hybrid) leads, as in OpenSSH 10.
pub const KEX_DEFAULT: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
];
/// Implemented, but only on request (`+name`), as in OpenSSH.
const KEX_EXTRA: &[&str] = &[
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group17-sha512",
];

/// Key exchange methods OpenSSH knows that our client does not implement.
const KEX_OPENSSH_ONLY: &[&str] = &[
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "mlkem768nistp256-sha256",
    "mlkem1024nistp384-sha384",
];

/// Ciphers, best first. AES-GCM leads: it runs on AES-NI and costs less
/// CPU than chacha20 for bulk data; every OpenSSH server offers both.
pub const CIPHERS_DEFAULT: &[&str] = &[
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
];
const CIPHERS_EXTRA: &[&str] = &["aes128-cbc", "aes192-cbc", "aes256-cbc"];
const CIPHERS_OPENSSH_ONLY: &[&str] = &["3des-cbc"];

/// MACs (used with the non-AEAD ciphers only), OpenSSH's order without
/// the umac ones, which we do not implement.
pub const MACS_DEFAULT: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
];
const MACS_EXTRA: &[&str] = &[];
const MACS_OPENSSH_ONLY: &[&str] = &[
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha1-96",
    "hmac-sha1-96-etm@openssh.com",
    "hmac-md5",
    "hmac-md5-96",
    "hmac-md5-etm@openssh.com",
    "hmac-md5-96-etm@openssh.com",
];

/// Public key algorithms (host keys, and ours for authentication),
/// certificates first, as OpenSSH's default (without the security-key
/// ones, which we do not implement).
pub const KEYS_DEFAULT: &[&str] = &[
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
];
/// SHA-1 RSA signatures: only on request, as since OpenSSH 8.8.
const KEYS_EXTRA: &[&str] = &["ssh-rsa-cert-v01@openssh.com", "ssh-rsa"];
const KEYS_OPENSSH_ONLY: &[&str] = &[
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
    "ssh-dss-cert-v01@openssh.com",
];

/// The algorithms a CA may sign certificates with.
pub const CA_DEFAULT: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
];
const CA_EXTRA: &[&str] = &["ssh-rsa"];

/// OpenSSH's `SSH_RSA_MINIMUM_MODULUS_SIZE`, RequiredRSASize's default and floor.
pub const RSA_MINIMUM_BITS: u32 = 1024;

/// Which list a keyword sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Kex,
    Ciphers,
    Macs,
    /// HostKeyAlgorithms and PubkeyAcceptedAlgorithms.
    Keys,
    /// CASignatureAlgorithms: plain key algorithms only.
    CaSignature,
}

impl ListKind {
    /// The list `keyword` (lower-cased) sets, if it is one of ours.
    pub fn of_keyword(keyword: &str) -> Option<ListKind> {
        Some(match keyword {
            "kexalgorithms" => ListKind::Kex,
            "ciphers" => ListKind::Ciphers,
            "macs" => ListKind::Macs,
            "hostkeyalgorithms" | "pubkeyacceptedalgorithms" | "pubkeyacceptedkeytypes" => {
                ListKind::Keys
            }
            "casignaturealgorithms" => ListKind::CaSignature,
            _ => return None,
        })
    }

    /// Our default, best first.
    pub fn default_list(self) -> &'static [&'static str] {
        match self {
            ListKind::Kex => KEX_DEFAULT,
            ListKind::Ciphers => CIPHERS_DEFAULT,
            ListKind::Macs => MACS_DEFAULT,
            ListKind::Keys => KEYS_DEFAULT,
            ListKind::CaSignature => CA_DEFAULT,
        }
    }

    /// Names OpenSSH knows that our client does not implement: accepted
    /// in a list, never offered.
    fn openssh_only(self) -> &'static [&'static str] {
        match self {
            ListKind::Kex => KEX_OPENSSH_ONLY,
            ListKind::Ciphers => CIPHERS_OPENSSH_ONLY,
            ListKind::Macs => MACS_OPENSSH_ONLY,
            ListKind::Keys => KEYS_OPENSSH_ONLY,
            ListKind::CaSignature => &[],
        }
    }

    /// The keyword that sets this list, for messages.
    pub fn keyword(self) -> &'static str {
        match self {
            ListKind::Kex => "KexAlgorithms",
            ListKind::Ciphers => "Ciphers",
            ListKind::Macs => "MACs",
            ListKind::Keys => "HostKeyAlgorithms",
            ListKind::CaSignature => "CASignatureAlgorithms",
        }
    }

    fn extra(self) -> &'static [&'static str] {
        match self {
            ListKind::Kex => KEX_EXTRA,
            ListKind::Ciphers => CIPHERS_EXTRA,
            ListKind::Macs => MACS_EXTRA,
            ListKind::Keys => KEYS_EXTRA,
            ListKind::CaSignature => CA_EXTRA,
        }
    }

    /// Every name our client implements for this list.
    pub fn all(self) -> impl Iterator<Item = &'static str> {
        self.default_list().iter().chain(self.extra()).copied()
    }

    /// Key type lists take wildcards in every form (sshkey_names_valid2);
    /// the others only in a `-list`.
    fn wildcards(self) -> bool {
        matches!(self, ListKind::Keys | ListKind::CaSignature)
    }
}

/// A list value OpenSSH would refuse, in its words (after `FILE line N: `).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadList {
    #[error("Bad SSH2 cipher spec '{0}'.")]
    Ciphers(String),
    #[error("Bad SSH2 MAC spec '{0}'.")]
    Macs(String),
    #[error("Bad SSH2 KexAlgorithms '{0}'.")]
    Kex(String),
    #[error("Bad key types '{0}'.")]
    Keys(String),
    #[error("integer value invalid.")]
    Integer,
}

/// Check one line's value as OpenSSH does when it reads the line (active
/// or not): `None` if `keyword` is not a crypto keyword or the value is
/// good. A `-list` is not checked (its patterns only remove).
pub fn check_line(keyword: &str, value: &str) -> Option<BadList> {
    if keyword == "requiredrsasize" {
        return value.parse::<i32>().is_err().then_some(BadList::Integer);
    }
    let kind = ListKind::of_keyword(keyword)?;
    if value.starts_with('-') {
        return None;
    }
    let names = value.strip_prefix(['+', '^']).unwrap_or(value);
    let known = |name: &str| {
        kind.all().any(|n| n == name)
            || kind.openssh_only().contains(&name)
            || (kind.wildcards()
                && (name.contains(['*', '?']))
                && kind.all().any(|n| pattern_list_matches(name, n, true)))
    };
    let good = !names.is_empty() && names.split(',').all(known);
    match good {
        true => None,
        false => Some(match kind {
            ListKind::Kex => BadList::Kex(value.to_string()),
            ListKind::Ciphers => BadList::Ciphers(value.to_string()),
            ListKind::Macs => BadList::Macs(value.to_string()),
            ListKind::Keys | ListKind::CaSignature => BadList::Keys(value.to_string()),
        }),
    }
}

/// OpenSSH's kex_assemble_names: `value` (or nothing: the default) made
/// into the list to offer, best first, names implemented only.
pub fn assemble(kind: ListKind, value: Option<&str>) -> Vec<String> {
    let default = kind.default_list();
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return default.iter().map(|s| s.to_string()).collect();
    };
    if let Some(patterns) = value.strip_prefix('-') {
        return default
            .iter()
            .filter(|name| !patterns.split(',').any(|p| pattern_matches(p, name)))
            .map(|s| s.to_string())
            .collect();
    }
    let words: Vec<&str> = if let Some(added) = value.strip_prefix('+') {
        default.iter().copied().chain(added.split(',')).collect()
    } else if let Some(first) = value.strip_prefix('^') {
        first.split(',').chain(default.iter().copied()).collect()
    } else {
        value.split(',').collect()
    };
    // Each word (a name or a pattern) adds the implemented names it
    // matches, in our order, once.
    let mut out: Vec<String> = Vec::new();
    for word in words {
        for name in kind.all().filter(|n| pattern_matches(word, n)) {
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// One pattern (`*`, `?`) against one name.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    !pattern.is_empty() && !pattern.starts_with('!') && pattern_list_matches(pattern, name, true)
}

/// The crypto policy for one destination, every list assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Algorithms {
    pub kex: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
    pub host_keys: Vec<String>,
    /// Whether HostKeyAlgorithms was set (else known_hosts may reorder).
    pub host_keys_configured: bool,
    pub pubkey_accepted: Vec<String>,
    pub ca_signature: Vec<String>,
    /// The smallest RSA key, in bits, accepted from the server or used to
    /// log in.
    pub required_rsa_bits: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(kind: ListKind, value: &str) -> Vec<String> {
        assemble(kind, Some(value))
    }

    #[test]
    fn lists_as_openssh_assembles_them() {
        assert_eq!(names(ListKind::Ciphers, "aes256-ctr"), ["aes256-ctr"]);
        let plus = names(ListKind::Ciphers, "+aes128-cbc");
        assert_eq!(plus.last().map(String::as_str), Some("aes128-cbc"));
        assert_eq!(plus.len(), CIPHERS_DEFAULT.len() + 1);
        let caret = names(ListKind::Ciphers, "^aes256-ctr");
        assert_eq!(caret[0], "aes256-ctr");
        assert_eq!(caret.len(), CIPHERS_DEFAULT.len(), "no name twice");
        let minus = names(ListKind::Ciphers, "-aes*-gcm@openssh.com,chacha20*");
        assert_eq!(minus, ["aes128-ctr", "aes192-ctr", "aes256-ctr"]);
        assert!(names(ListKind::Ciphers, "-*").is_empty());
        assert_eq!(
            names(ListKind::Kex, "diffie-hellman-group14-sha256"),
            ["diffie-hellman-group14-sha256"]
        );
        assert_eq!(assemble(ListKind::Kex, None)[0], "mlkem768x25519-sha256");
        assert_eq!(
            names(ListKind::Keys, "ssh-ed25519*"),
            ["ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519"]
        );
    }

    #[test]
    fn names_openssh_does_not_know_are_refused_with_its_words() {
        assert_eq!(
            check_line("ciphers", "foo").unwrap().to_string(),
            "Bad SSH2 cipher spec 'foo'."
        );
        assert!(check_line("ciphers", "aes*").is_some(), "no patterns");
        assert!(check_line("ciphers", "-3des-cbc,foo*").is_none());
        assert_eq!(
            check_line("kexalgorithms", "curve25519-sha256,nope")
                .unwrap()
                .to_string(),
            "Bad SSH2 KexAlgorithms 'curve25519-sha256,nope'."
        );
        // OpenSSH knows these; our client does not implement them: taken,
        // and left out of what we offer.
        assert!(check_line("ciphers", "+3des-cbc").is_none());
        assert!(check_line("macs", "umac-64-etm@openssh.com").is_none());
        assert!(check_line("kexalgorithms", "sntrup761x25519-sha512@openssh.com").is_none());
        assert!(check_line("hostkeyalgorithms", "ssh-dss").is_none());
        assert_eq!(
            names(
                ListKind::Kex,
                "sntrup761x25519-sha512@openssh.com,curve25519-sha256"
            ),
            ["curve25519-sha256"]
        );
        assert!(names(ListKind::Macs, "umac-64-etm@openssh.com").is_empty());
        assert!(check_line("hostkeyalgorithms", "ssh-rsa").is_none());
        assert!(check_line("hostkeyalgorithms", "ssh-ed25519*").is_none());
        assert_eq!(
            check_line("hostkeyalgorithms", "ssh-foo")
                .unwrap()
                .to_string(),
            "Bad key types 'ssh-foo'."
        );
        assert!(check_line("casignaturealgorithms", "ssh-ed25519-cert-v01@openssh.com").is_some());
        assert!(check_line("requiredrsasize", "abc").is_some());
        assert!(check_line("requiredrsasize", "2048").is_none());
        assert!(check_line("user", "foo").is_none());
    }
}
