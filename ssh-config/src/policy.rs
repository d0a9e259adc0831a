//! A destination's crypto policy, read from its resolved configuration
//! (the lists themselves are assembled by [`crate::algorithms`]).

use crate::algorithms::{Algorithms, ListKind, RSA_MINIMUM_BITS, assemble};
use crate::host_config::HostConfig;

impl HostConfig {
    /// The winning value of a keyword obtained (lower-cased name).
    fn obtained_first(&self, keyword: &str) -> Option<&str> {
        self.obtained
            .iter()
            .find(|(k, _)| k == keyword)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    /// Why the crypto policy leaves our client nothing to offer: a list
    /// that names only what OpenSSH has and we do not (MACs only where a
    /// cipher of the list needs one). `None` when every list has a name.
    pub fn unimplemented_policy(&self) -> Option<String> {
        let policy = self.algorithms();
        let aead = |c: &String| c.contains("gcm") || c.starts_with("chacha20");
        let empty = [
            (ListKind::Kex, "kexalgorithms", policy.kex.is_empty()),
            (ListKind::Ciphers, "ciphers", policy.ciphers.is_empty()),
            (
                ListKind::Macs,
                "macs",
                policy.macs.is_empty() && !policy.ciphers.iter().all(aead),
            ),
            (
                ListKind::Keys,
                "hostkeyalgorithms",
                policy.host_keys.is_empty(),
            ),
        ];
        let (kind, keyword, _) = empty.into_iter().find(|(_, _, e)| *e)?;
        let value = self.obtained_first(keyword).unwrap_or_default();
        Some(format!(
            "{} {value}: mitogen-fakessh's ssh client implements none of these; add one it does ({})",
            kind.keyword(),
            kind.default_list().join(",")
        ))
    }

    /// The crypto policy: each list from its keyword, else our default.
    /// The values were checked when their lines were read.
    pub fn algorithms(&self) -> Algorithms {
        let list = |kind, keyword| assemble(kind, self.obtained_first(keyword));
        let pubkey = self
            .obtained_first("pubkeyacceptedalgorithms")
            .or_else(|| self.obtained_first("pubkeyacceptedkeytypes"));
        Algorithms {
            kex: list(ListKind::Kex, "kexalgorithms"),
            ciphers: list(ListKind::Ciphers, "ciphers"),
            macs: list(ListKind::Macs, "macs"),
            host_keys: list(ListKind::Keys, "hostkeyalgorithms"),
            host_keys_configured: self.obtained_first("hostkeyalgorithms").is_some(),
            pubkey_accepted: assemble(ListKind::Keys, pubkey),
            ca_signature: list(ListKind::CaSignature, "casignaturealgorithms"),
            required_rsa_bits: self
                .obtained_first("requiredrsasize")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(RSA_MINIMUM_BITS)
                .max(RSA_MINIMUM_BITS),
        }
    }
}
