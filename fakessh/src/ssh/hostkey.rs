//! Host key verification against known_hosts, as OpenSSH does it.

use std::sync::{Arc, Mutex};

use russh::keys::{
    HashAlg, PublicKey, PublicKeyOrCertificate, check_known_hosts_path, known_hosts,
};
use tracing::{info, warn};

use super::config::{HostConfig, StrictHostKeyChecking};

/// The russh client handler: decides whether the server's key is trusted
/// and, if not, records why so the error names the key.
pub struct HostKeyCheck {
    host: String,
    port: u16,
    user_files: Vec<std::path::PathBuf>,
    global_files: Vec<std::path::PathBuf>,
    strict: StrictHostKeyChecking,
    verdict: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    pub fn new(cfg: &HostConfig) -> HostKeyCheck {
        HostKeyCheck {
            host: cfg.hostname.clone(),
            port: cfg.port,
            user_files: cfg.user_known_hosts_files.clone(),
            global_files: cfg.global_known_hosts_files.clone(),
            strict: cfg.strict_host_key_checking,
            verdict: Arc::new(Mutex::new(None)),
        }
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

    fn decide(&self, key: &PublicKey) -> Result<bool, russh::Error> {
        let described = describe(key);
        let shown_host = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let mut changed: Option<String> = None;
        for file in self
            .user_files
            .iter()
            .chain(self.global_files.iter())
            .filter(|f| f.exists())
        {
            match check_known_hosts_path(&self.host, self.port, key, file) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { line }) => {
                    changed.get_or_insert(format!("{}:{line}", file.display()));
                }
                Err(e) => warn!("cannot read {}: {e}", file.display()),
            }
        }
        if let Some(at) = changed {
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
        match self.strict {
            StrictHostKeyChecking::Yes => self.refuse(format!(
                "host key verification failed: {shown_host} is not in known_hosts ({described}); add it, or set StrictHostKeyChecking accept-new in the ssh config"
            )),
            StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => {
                let Some(file) = self.user_files.first() else {
                    return Ok(true);
                };
                match known_hosts::learn_known_hosts_path(&self.host, self.port, key, file) {
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
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.decide(key),
            PublicKeyOrCertificate::Certificate(_) => {
                self.refuse("host certificates are not supported yet; use plain host keys".into())
            }
        }
    }
}
