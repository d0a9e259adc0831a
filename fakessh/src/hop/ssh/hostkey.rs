//! Host key verification against known_hosts, as OpenSSH does it: plain
//! keys, host certificates from a `@cert-authority`, and `@revoked` keys.

use std::sync::{Arc, Mutex};

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};
use tracing::{debug, info, warn};

use super::key_policy::check_rsa_size;
use super::known_hosts::{self, KnownHosts, Verdict};
use ssh_config::{HostConfig, StrictHostKeyChecking, host_in_pattern_list};

/// The russh client handler: decides whether the server's key is trusted
/// and, if not, records why so the error names the key.
pub struct HostKeyCheck {
    host: String,
    port: u16,
    /// Where an accepted new key is recorded (the first user file).
    learn_into: Option<std::path::PathBuf>,
    /// HashKnownHosts: record it under a hashed name.
    hash_known_hosts: bool,
    strict: StrictHostKeyChecking,
    known: KnownHosts,
    /// CASignatureAlgorithms: what a trusted CA may have signed with.
    ca_signature: Vec<String>,
    /// RequiredRSASize: the smallest RSA host key taken.
    required_rsa_bits: u32,
    verdict: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    pub fn new(cfg: &HostConfig) -> HostKeyCheck {
        let files: Vec<_> = cfg
            .user_known_hosts_files
            .iter()
            .chain(&cfg.global_known_hosts_files)
            .cloned()
            .collect();
        let policy = cfg.algorithms();
        HostKeyCheck {
            ca_signature: policy.ca_signature,
            required_rsa_bits: policy.required_rsa_bits,
            known: KnownHosts::read(&files, &cfg.hostname, cfg.port),
            host: cfg.hostname.clone(),
            port: cfg.port,
            learn_into: cfg.user_known_hosts_files.first().cloned(),
            hash_known_hosts: cfg.hash_known_hosts,
            strict: cfg.strict_host_key_checking,
            verdict: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether a CA is trusted for this host, so that asking the server for
    /// a host certificate makes sense (OpenSSH asks only then, too).
    pub fn wants_certificates(&self) -> bool {
        !self.known.authorities.is_empty()
    }

    /// The host key algorithms to ask the server for, `preferred` reordered
    /// so that types already recorded for this host come first (as
    /// OpenSSH does), so an old known_hosts entry of one type is used
    /// rather than refused as unknown.
    pub fn key_order(&self, preferred: &[Algorithm]) -> Vec<Algorithm> {
        let recorded = self.known.recorded_types();
        let (mut first, rest): (Vec<_>, Vec<_>) = preferred
            .iter()
            .cloned()
            .partition(|a| recorded.iter().any(|r| super::known_hosts::same_type(r, a)));
        first.extend(rest);
        first
    }

    /// Where the reason for a refusal is left.
    pub fn verdict(&self) -> Arc<Mutex<Option<String>>> {
        self.verdict.clone()
    }

    fn refuse(&self, why: String) -> Result<bool, russh::Error> {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(why);
        }
        Ok(false)
    }

    fn shown_host(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// A host certificate: trusted if a `@cert-authority` for this host
    /// signed it, it is a host certificate, in its validity period, names
    /// this host (or no host at all) and carries no critical options. Signed
    /// by a CA we do not know, its key is judged as a plain key instead, as
    /// OpenSSH does.
    fn decide_certificate(&self, cert: &Certificate) -> Result<bool, russh::Error> {
        let shown_host = self.shown_host();
        let key = PublicKey::new(cert.public_key().clone(), "");
        let ca = PublicKey::new(cert.signature_key().clone(), "");
        if self.known.is_revoked(&key) || self.known.is_revoked(&ca) {
            return self.refuse(format!(
                "host key verification failed: the certificate of {shown_host} ({}, signed by {}) is marked @revoked in known_hosts",
                describe(&key),
                describe(&ca)
            ));
        }
        let trusted: Vec<_> = self
            .known
            .authorities
            .iter()
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect();
        if !trusted.contains(&ca.fingerprint(HashAlg::Sha256)) {
            debug!("no @cert-authority for {shown_host} signed its certificate; trying its key");
            return self.decide(&key);
        }
        // CASignatureAlgorithms, as OpenSSH's sshkey_cert_check_host: a
        // certificate signed otherwise is not valid, and the host is
        // judged by its plain key instead.
        let signed_with = cert.signature().algorithm();
        if !self.ca_signature.iter().any(|a| a == signed_with.as_str()) {
            warn!(
                "Certificate signed with disallowed algorithm ({} not in CASignatureAlgorithms); judging {shown_host} by its plain key",
                signed_with.as_str()
            );
            return self.decide(&key);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let why = if cert.validate_at(now, &trusted).is_err() {
            Some("its signature does not verify or it is outside its validity period".to_string())
        } else if cert.cert_type() != CertType::Host {
            Some("it is a user certificate, not a host certificate".into())
        } else if !cert.critical_options().is_empty() {
            Some("it carries critical options, which host certificates may not".into())
        } else if !cert.valid_principals().is_empty()
            && !cert
                .valid_principals()
                .iter()
                .any(|p| host_in_pattern_list(p, &self.host))
        {
            Some(format!(
                "it names {}, not {}",
                cert.valid_principals().join(", "),
                self.host
            ))
        } else {
            None
        };
        match why {
            Some(why) => self.refuse(format!(
                "host key verification failed: the host certificate of {shown_host} (key id {:?}, signed by {}) is not valid: {why}",
                cert.key_id(),
                describe(&ca)
            )),
            None => {
                info!(
                    "{shown_host}: host certificate {:?} signed by {}",
                    cert.key_id(),
                    describe(&ca)
                );
                Ok(true)
            }
        }
    }

    fn decide(&self, key: &PublicKey) -> Result<bool, russh::Error> {
        let described = describe(key);
        let shown_host = self.shown_host();
        if self.known.is_revoked(key) {
            return self.refuse(format!(
                "host key verification failed: the key of {shown_host} ({described}) is marked @revoked in known_hosts"
            ));
        }
        match self.known.verdict(key) {
            Verdict::Known => return Ok(true),
            Verdict::Changed(at) => {
                if self.strict == StrictHostKeyChecking::No {
                    warn!(
                        "host key for {shown_host} changed ({described}), accepted because StrictHostKeyChecking is no"
                    );
                    return Ok(true);
                }
                return self.refuse(format!(
                    "host key verification failed: the key of {shown_host} has CHANGED ({described}; recorded at {at}); if that is expected, remove the old entry with: ssh-keygen -R '{shown_host}'"
                ));
            }
            Verdict::Unknown => {}
        }
        match self.strict {
            StrictHostKeyChecking::Yes => self.refuse(format!(
                "host key verification failed: {shown_host} is not in known_hosts ({described}); add it, or set StrictHostKeyChecking accept-new in the ssh config"
            )),
            StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => {
                let Some(file) = &self.learn_into else {
                    return Ok(true);
                };
                match known_hosts::learn(file, &self.host, self.port, key, self.hash_known_hosts) {
                    Ok(()) => info!("learned the host key of {shown_host} ({described}) into {}", file.display()),
                    Err(e) => warn!("cannot record the host key in {}: {e}", file.display()),
                }
                Ok(true)
            }
        }
    }
}

/// `ED25519 SHA256:...`, as OpenSSH shows keys.
fn describe(key: &PublicKey) -> String {
    let alg = key.algorithm();
    let kind = match alg.as_str() {
        "ssh-ed25519" => "ED25519".to_string(),
        "ssh-rsa" => "RSA".to_string(),
        s if s.starts_with("ecdsa-") => "ECDSA".to_string(),
        s => s.to_string(),
    };
    format!("{kind} {}", key.fingerprint(HashAlg::Sha256))
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // RequiredRSASize, before anything else (OpenSSH's
        // verify_host_key_callback), for a certificate's key too.
        let key_data = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key(),
        };
        if let Err(why) = check_rsa_size(key_data, self.required_rsa_bits) {
            debug!("{}: {why}", self.shown_host());
            return self.refuse("Bad server host key: Invalid key length".into());
        }
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.decide(key),
            PublicKeyOrCertificate::Certificate(cert) => self.decide_certificate(cert),
        }
    }
}
