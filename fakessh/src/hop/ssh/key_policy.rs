//! `PubkeyAcceptedAlgorithms` and `RequiredRSASize` applied to the keys we
//! offer, and `RequiredRSASize` to the server's host key, as OpenSSH's
//! client applies them (sshconnect2.c): a key whose type (or, for an RSA
//! key, one of its signature algorithms) is not in the list is skipped;
//! an RSA key smaller than RequiredRSASize is never used; an RSA key is
//! signed with the first of `rsa-sha2-512`, `rsa-sha2-256`, `ssh-rsa` in
//! the list that the server takes.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Certificate, HashAlg, PublicKey};
use ssh_config::HostConfig;
use ssh_config::algorithms::Algorithms;
use tracing::info;

use super::identity;

/// The RSA signature algorithms, each with its hash.
const RSA_SIGNATURES: [(&str, Option<HashAlg>); 3] = [
    ("rsa-sha2-512", Some(HashAlg::Sha512)),
    ("rsa-sha2-256", Some(HashAlg::Sha256)),
    ("ssh-rsa", None),
];

/// Why a key is not offered (said at `-v`, and in the "tried:" list).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("{0} not in PubkeyAcceptedAlgorithms")]
    NotAccepted(String),
    #[error("no RSA signature algorithm of PubkeyAcceptedAlgorithms is supported by the server")]
    NoRsaSignature,
    #[error("Invalid key length: RSA key of {bits} bits, RequiredRSASize is {required}")]
    RsaTooSmall { bits: u32, required: u32 },
}

/// What keys this connection may offer, and how RSA keys sign.
pub struct KeyPolicy {
    accepted: Vec<String>,
    required_rsa_bits: u32,
    /// `None` when no RSA signature algorithm is both accepted and
    /// supported by the server; else its hash (`None` for `ssh-rsa`).
    rsa_signature: Option<Option<HashAlg>>,
}

impl KeyPolicy {
    /// `server_rsa` is what the server's `server-sig-algs` says of RSA
    /// (russh's `best_supported_rsa_hash`): `None` without the extension.
    pub fn new(policy: &Algorithms, server_rsa: Option<Option<HashAlg>>) -> KeyPolicy {
        let server_takes = |hash: Option<HashAlg>| match (server_rsa, hash) {
            // An sshd that offers rsa-sha2-512 offers rsa-sha2-256 too.
            (Some(Some(HashAlg::Sha512)), Some(_)) => true,
            (Some(Some(best)), Some(h)) => best == h,
            // The server names no SHA-2 RSA signature, or nothing at all:
            // as OpenSSH, ssh-rsa (if the list allows it).
            (Some(None) | None, None) => true,
            _ => false,
        };
        let rsa_signature = policy.pubkey_accepted.iter().find_map(|name| {
            RSA_SIGNATURES
                .iter()
                .find(|(n, hash)| n == name && server_takes(*hash))
                .map(|(_, hash)| *hash)
        });
        KeyPolicy {
            accepted: policy.pubkey_accepted.clone(),
            required_rsa_bits: policy.required_rsa_bits,
            rsa_signature,
        }
    }

    /// The hash RSA keys sign with (for a key that passed [`Self::check_key`]).
    pub fn rsa_hash(&self) -> Option<HashAlg> {
        self.rsa_signature.flatten()
    }

    fn accepts(&self, name: &str) -> bool {
        self.accepted.iter().any(|a| a == name)
    }

    /// Whether a plain key may be offered.
    pub fn check_key(&self, key: &KeyData) -> Result<(), Skip> {
        check_rsa_size(key, self.required_rsa_bits)?;
        let name = key.algorithm().as_str().to_string();
        if key.is_rsa() {
            let named = RSA_SIGNATURES.iter().any(|(n, _)| self.accepts(n));
            if !named {
                return Err(Skip::NotAccepted(name));
            }
            return match self.rsa_signature {
                Some(_) => Ok(()),
                None => Err(Skip::NoRsaSignature),
            };
        }
        match self.accepts(&name) {
            true => Ok(()),
            false => Err(Skip::NotAccepted(name)),
        }
    }

    /// Whether a certificate may be offered (its type, or for an RSA
    /// certificate one of the SHA-2 certificate types, in the list). Its
    /// CA's signature algorithm is the server's business: OpenSSH's
    /// client does not judge it either.
    pub fn check_certificate(&self, cert: &Certificate) -> Result<(), Skip> {
        check_rsa_size(cert.public_key(), self.required_rsa_bits)?;
        let name = cert.algorithm().to_certificate_type();
        let rsa_sha2 = cert.public_key().is_rsa()
            && [
                "rsa-sha2-512-cert-v01@openssh.com",
                "rsa-sha2-256-cert-v01@openssh.com",
            ]
            .iter()
            .any(|n| self.accepts(n));
        match self.accepts(&name) || rsa_sha2 {
            true => Ok(()),
            false => Err(Skip::NotAccepted(name)),
        }
    }
}

/// What of one key file is offered: its certificates the policy allows,
/// then the plain key if the policy allows it.
pub struct FileOffer {
    pub plain: bool,
    pub certificates: Vec<(PathBuf, Certificate)>,
}

impl FileOffer {
    /// Judge the key file `path` by its public key; `Err` (the plain key's
    /// reason) when nothing of it may be offered.
    pub fn judge(
        policy: &KeyPolicy,
        path: &Path,
        public: &PublicKey,
        cfg: &HostConfig,
    ) -> Result<FileOffer, Skip> {
        let certificates: Vec<_> = identity::certificates(path, public, cfg)
            .into_iter()
            .filter(|(cert_path, cert)| match policy.check_certificate(cert) {
                Ok(()) => true,
                Err(why) => {
                    info!("skipping certificate {}: {why}", cert_path.display());
                    false
                }
            })
            .collect();
        match policy.check_key(public.key_data()) {
            Ok(()) => Ok(FileOffer {
                plain: true,
                certificates,
            }),
            Err(why) if certificates.is_empty() => Err(why),
            Err(why) => {
                info!(
                    "{}: only its certificates are offered: {why}",
                    path.display()
                );
                Ok(FileOffer {
                    plain: false,
                    certificates,
                })
            }
        }
    }
}

/// The exact size in bits of an RSA key's modulus; `None` for other keys.
pub fn rsa_bits(key: &KeyData) -> Option<u32> {
    let rsa = key.rsa()?;
    let bytes = rsa.n().as_positive_bytes()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let rest = u32::try_from(bytes.len() - first - 1).ok()?;
    Some(rest * 8 + (8 - bytes[first].leading_zeros()))
}

/// OpenSSH's `sshkey_check_rsa_length`: an RSA key under `required` bits
/// (never under 1024) is refused; other keys pass.
pub fn check_rsa_size(key: &KeyData, required: u32) -> Result<(), Skip> {
    let required = required.max(ssh_config::algorithms::RSA_MINIMUM_BITS);
    match rsa_bits(key) {
        Some(bits) if bits < required => Err(Skip::RsaTooSmall { bits, required }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(accepted: &str) -> Algorithms {
        ssh_config::SshConfig::parse(&format!("Host *\n PubkeyAcceptedAlgorithms {accepted}\n"))
            .unwrap()
            .resolve("h", None, None)
            .unwrap()
            .algorithms()
    }

    #[test]
    fn rsa_signs_with_the_first_accepted_algorithm_the_server_takes() {
        let sha512 = Some(Some(HashAlg::Sha512));
        let p = KeyPolicy::new(&policy("rsa-sha2-256,rsa-sha2-512"), sha512);
        assert_eq!(p.rsa_signature, Some(Some(HashAlg::Sha256)));
        let p = KeyPolicy::new(&policy("rsa-sha2-512"), Some(Some(HashAlg::Sha256)));
        assert_eq!(p.rsa_signature, None, "the server cannot verify it");
        // Without server-sig-algs, ssh-rsa only when the list allows it.
        assert_eq!(
            KeyPolicy::new(&policy("rsa-sha2-512"), None).rsa_signature,
            None
        );
        let p = KeyPolicy::new(&policy("+ssh-rsa"), None);
        assert_eq!(p.rsa_signature, Some(None));
        let p = KeyPolicy::new(&policy("ssh-ed25519"), sha512);
        assert_eq!(p.rsa_signature, None);
    }
}
