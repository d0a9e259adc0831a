//! The user's crypto policy (ssh_config's KexAlgorithms, Ciphers, MACs and
//! HostKeyAlgorithms, assembled by `ssh_config::algorithms`) as what our
//! russh client offers, and a negotiation that finds nothing in common
//! told the way OpenSSH tells it.

use std::borrow::Cow;

use router::text::sanitize_line;
use russh::keys::Algorithm;
use russh::{AlgorithmKind, Preferred, cipher, kex, mac};
use ssh_config::algorithms::Algorithms;

/// The preference lists for russh: exactly the policy's names, in its
/// order (every one was checked to be one russh implements when its line
/// was read), plus the protocol extensions russh needs (ext-info, strict
/// key exchange), which are not algorithms.
pub fn preferred(policy: &Algorithms, base: &Preferred) -> Preferred {
    let mut kex_names: Vec<kex::Name> = policy
        .kex
        .iter()
        .filter_map(|n| kex::Name::try_from(n.as_str()).ok())
        .collect();
    kex_names.push(kex::EXTENSION_SUPPORT_AS_CLIENT);
    kex_names.push(kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT);
    let (certificates, keys) = host_key_algorithms(&policy.host_keys);
    Preferred {
        kex: Cow::Owned(kex_names),
        key: Cow::Owned(keys),
        host_key_certificates: Cow::Owned(certificates),
        cipher: Cow::Owned(
            policy
                .ciphers
                .iter()
                .filter_map(|n| cipher::Name::try_from(n.as_str()).ok())
                .collect(),
        ),
        mac: Cow::Owned(
            policy
                .macs
                .iter()
                .filter_map(|n| mac::Name::try_from(n.as_str()).ok())
                .collect(),
        ),
        compression: base.compression.clone(),
    }
}

/// Every plain public key algorithm russh knows.
fn plain_algorithms() -> Vec<Algorithm> {
    use russh::keys::{EcdsaCurve, HashAlg};
    vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
        Algorithm::Rsa { hash: None },
    ]
}

/// The algorithm a plain name (`rsa-sha2-512`) or a certificate name
/// (`rsa-sha2-512-cert-v01@openssh.com`) stands for, and whether it is a
/// certificate.
pub fn algorithm_named(name: &str) -> Option<(Algorithm, bool)> {
    plain_algorithms().into_iter().find_map(|a| {
        if a.as_str() == name {
            Some((a, false))
        } else if a.to_certificate_type() == name {
            Some((a, true))
        } else {
            None
        }
    })
}

/// HostKeyAlgorithms split into the certificate algorithms and the plain
/// ones, each in the list's order.
fn host_key_algorithms(names: &[String]) -> (Vec<Algorithm>, Vec<Algorithm>) {
    let mut certificates = Vec::new();
    let mut keys = Vec::new();
    for (algorithm, is_certificate) in names.iter().filter_map(|n| algorithm_named(n)) {
        match is_certificate {
            true => certificates.push(algorithm),
            false => keys.push(algorithm),
        }
    }
    (certificates, keys)
}

/// OpenSSH's words for a negotiation with nothing in common:
/// `no matching cipher found. Their offer: aes256-ctr`. The offer is the
/// server's text: sanitized.
pub fn no_match(kind: &AlgorithmKind, theirs: &[String]) -> String {
    let what = match kind {
        AlgorithmKind::Kex => "key exchange method",
        AlgorithmKind::Key => "host key type",
        AlgorithmKind::Cipher => "cipher",
        AlgorithmKind::Mac => "MAC",
        AlgorithmKind::Compression => "compression method",
    };
    let offer = sanitize_line(theirs.join(",").as_bytes());
    format!("no matching {what} found. Their offer: {offer}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_config::algorithms::ListKind;

    /// Every name the config crate accepts is one russh implements: the
    /// two lists cannot drift apart unnoticed.
    #[test]
    fn every_accepted_name_is_implemented_by_russh() {
        for name in ListKind::Kex.all() {
            assert!(kex::Name::try_from(name).is_ok(), "kex {name}");
        }
        for name in ListKind::Ciphers.all() {
            assert!(cipher::Name::try_from(name).is_ok(), "cipher {name}");
        }
        for name in ListKind::Macs.all() {
            assert!(mac::Name::try_from(name).is_ok(), "mac {name}");
        }
        for name in ListKind::Keys.all().chain(ListKind::CaSignature.all()) {
            assert!(algorithm_named(name).is_some(), "key {name}");
        }
    }

    #[test]
    fn the_policy_is_what_russh_offers() {
        let cfg = ssh_config::SshConfig::parse(
            "Host *\n Ciphers aes256-ctr\n KexAlgorithms diffie-hellman-group14-sha256\n MACs hmac-sha2-256\n HostKeyAlgorithms ssh-rsa\n",
        )
        .unwrap()
        .resolve("h", None, None)
        .unwrap();
        let p = preferred(&cfg.algorithms(), &Preferred::default());
        assert_eq!(p.cipher.as_ref(), [cipher::AES_256_CTR]);
        assert_eq!(p.mac.as_ref(), [mac::HMAC_SHA256]);
        assert_eq!(p.kex[0], kex::DH_G14_SHA256);
        assert_eq!(p.key.as_ref(), [Algorithm::Rsa { hash: None }]);
        assert!(p.host_key_certificates.is_empty());
        let default = ssh_config::SshConfig::default()
            .resolve("h", None, None)
            .unwrap();
        let p = preferred(&default.algorithms(), &Preferred::default());
        assert_eq!(p.kex[0], kex::MLKEM768X25519_SHA256);
    }
}
