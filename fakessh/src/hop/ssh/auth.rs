//! Logging in to an ssh hop the way OpenSSH's client does: ssh-agent keys,
//! then key files (asking for a passphrase only for a key the server would
//! take), then a password asked for on the terminal or through
//! `SSH_ASKPASS`, or keyboard-interactive prompts answered the same way.
//!
//! A password is only ever sent in answer to a prompt that names the user
//! and host (`user@host's password:`, `(user@host) Password:`): never the
//! `--password-file` password, which is for sudo/su/doas. A server that
//! refuses our keys would otherwise collect it.

use std::path::PathBuf;
use std::sync::Arc;

use router::text::sanitize_line;
use russh::MethodKind;
use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use tracing::{debug, info};

use super::hostkey::HostKeyCheck;
use super::identity::{self, KeyProblem};
use super::key_policy::{FileOffer, KeyPolicy};
use ssh_config::{HostConfig, home_dir};

/// Why the server did not let us in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication failed: {0}")]
    Protocol(russh::Error),
    #[error("authentication failed for user {user} (tried: {tried})")]
    Refused { user: String, tried: String },
}

/// Try ssh-agent keys, then key files, then a password or
/// keyboard-interactive answers the user gives for this host, like OpenSSH.
pub async fn authenticate(
    name: &str,
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    cfg: &HostConfig,
) -> Result<(), AuthError> {
    let mut tried: Vec<String> = Vec::new();
    let server_rsa = handle.best_supported_rsa_hash().await.ok().flatten();
    // PubkeyAcceptedAlgorithms and RequiredRSASize: which keys we offer,
    // and how RSA keys sign.
    let policy = KeyPolicy::new(&cfg.algorithms(), server_rsa);
    let rsa_hash = policy.rsa_hash();
    let files = cfg.identity_files_or_default();
    let key_files: Vec<(&PathBuf, String, identity::KeyFile)> = files
        .iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let shown = shown_path(p);
            let file = identity::open(p, &shown);
            (p, shown, file)
        })
        .collect();
    // With IdentitiesOnly, the agent may still sign for the configured
    // files' keys (so an encrypted key loaded there is not asked about).
    let only: Option<Vec<PublicKey>> = cfg.identities_only.then(|| {
        key_files
            .iter()
            .filter_map(|(_, _, file)| file.public_key())
            .collect()
    });
    if std::env::var_os("SSH_AUTH_SOCK").is_some()
        && let Ok(mut agent) = AgentClient::connect_env().await
    {
        tried.push("agent".into());
        let identities = agent.request_identities().await.unwrap_or_default();
        for identity in identities {
            let (key_data, allowed, comment) = match &identity {
                AgentIdentity::PublicKey { key, comment } => (
                    key.key_data().clone(),
                    policy.check_key(key.key_data()),
                    comment,
                ),
                AgentIdentity::Certificate {
                    certificate,
                    comment,
                } => (
                    certificate.public_key().clone(),
                    policy.check_certificate(certificate),
                    comment,
                ),
            };
            if only
                .as_ref()
                .is_some_and(|keys| !keys.iter().any(|k| k.key_data() == &key_data))
            {
                continue;
            }
            if let Err(why) = allowed {
                info!(
                    "{name}: skipping agent key {}: {why}",
                    sanitize_line(comment.as_bytes())
                );
                continue;
            }
            let result = match identity {
                AgentIdentity::PublicKey { key, .. } => {
                    let hash = hash_for(&key, rsa_hash);
                    handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                }
                // A certificate the agent holds with its key (ssh-add adds
                // KEY-cert.pub along with KEY).
                AgentIdentity::Certificate { certificate, .. } => {
                    let key = PublicKey::new(certificate.public_key().clone(), "");
                    let hash = hash_for(&key, rsa_hash);
                    handle
                        .authenticate_certificate_with(user, certificate, hash, &mut agent)
                        .await
                }
            };
            if let Ok(AuthResult::Success) = result {
                return Ok(());
            }
        }
    }
    for (path, shown, file) in key_files {
        // As OpenSSH: a key the policy excludes is dropped before its
        // passphrase is asked for or the server is asked about it.
        let known_offer = match file.public_key() {
            Some(public) => match FileOffer::judge(&policy, path, &public, cfg) {
                Ok(offer) => Some(offer),
                Err(why) => {
                    info!("{name}: skipping {shown}: {why}");
                    tried.push(format!("{shown} ({why})"));
                    continue;
                }
            },
            None => None,
        };
        // The server is asked about the plain key only if the policy lets
        // it be offered.
        let may_probe = known_offer.as_ref().is_none_or(|offer| offer.plain);
        let key = match file {
            identity::KeyFile::Ready(key) => key,
            identity::KeyFile::Locked(public) => {
                let public = public.filter(|_| may_probe);
                match unlock_if_taken(handle, user, path, &shown, public, rsa_hash, cfg).await {
                    Ok(key) => key,
                    Err(why) => {
                        debug!("{name}: skipping {why}");
                        tried.push(why.to_string());
                        continue;
                    }
                }
            }
            identity::KeyFile::Unprotected { public, mode } => {
                let public = public.filter(|_| may_probe);
                // As OpenSSH: said when the key would be loaded, that is
                // once the server would take it (or at once without a
                // public half to ask with), and never used.
                if server_would_take(handle, user, public, rsa_hash).await {
                    identity::refuse_unprotected(path, mode);
                }
                tried.push(KeyProblem::BadPermissions(shown).to_string());
                continue;
            }
            identity::KeyFile::Unusable(why) => {
                debug!("{name}: skipping {why}");
                tried.push(why.to_string());
                continue;
            }
        };
        let offer = match known_offer {
            Some(offer) => offer,
            None => match FileOffer::judge(&policy, path, key.public_key(), cfg) {
                Ok(offer) => offer,
                Err(why) => {
                    info!("{name}: skipping {shown}: {why}");
                    tried.push(format!("{shown} ({why})"));
                    continue;
                }
            },
        };
        for (cert_path, cert) in offer.certificates {
            tried.push(format!(
                "{shown} with certificate {}",
                shown_path(&cert_path)
            ));
            match handle
                .authenticate_openssh_cert(user, key.clone(), cert)
                .await
            {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(AuthError::Protocol(e)),
            }
        }
        if !offer.plain {
            continue;
        }
        tried.push(shown);
        let key = PrivateKeyWithHashAlg::new(key, rsa_hash);
        match handle.authenticate_publickey(user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(AuthError::Protocol(e)),
        }
    }
    if cfg.password_prompts > 0 {
        match interactive(handle, user, cfg).await {
            Ok(()) => return Ok(()),
            Err(Some(why)) => tried.push(why),
            Err(None) => {}
        }
    }
    let tried = if tried.is_empty() {
        "no agent, no key files, no password".to_string()
    } else {
        tried.join(", ")
    };
    Err(AuthError::Refused {
        user: user.to_string(),
        tried,
    })
}

fn shown_path(p: &std::path::Path) -> String {
    let home = home_dir();
    match p.strip_prefix(&home) {
        Ok(rest) if home != std::path::Path::new("/") => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

/// The hash for an RSA key's signatures (the best the server supports);
/// other key types have one of their own.
fn hash_for(key: &PublicKey, rsa_hash: Option<HashAlg>) -> Option<HashAlg> {
    if key.algorithm().is_rsa() {
        rsa_hash
    } else {
        None
    }
}

/// Whether the server would take `public` (asked without signing);
/// `true` without a public key to ask with.
async fn server_would_take(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    public: Option<PublicKey>,
    rsa_hash: Option<HashAlg>,
) -> bool {
    let Some(public) = public else {
        return true;
    };
    let hash = hash_for(&public, rsa_hash);
    let probe = handle
        .authenticate_publickey_with(user, public, hash, &mut identity::Probe)
        .await;
    matches!(probe, Err(identity::ProbeEnd::Accepted))
}

/// An encrypted key file: ask the server about its public half first (when
/// known), and for the passphrase only if the server would take the key.
async fn unlock_if_taken(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    path: &std::path::Path,
    shown: &str,
    public: Option<PublicKey>,
    rsa_hash: Option<HashAlg>,
    cfg: &HostConfig,
) -> Result<Arc<PrivateKey>, KeyProblem> {
    if public.is_some() && !server_would_take(handle, user, public, rsa_hash).await {
        return Err(KeyProblem::NotAccepted(shown.to_string()));
    }
    identity::unlock(path, shown, cfg).await
}

/// Ask the user for a password (or to answer the server's
/// keyboard-interactive prompts, shown escaped and after `(user@host)` as
/// OpenSSH shows them), as many times as NumberOfPasswordPrompts allows. `Err(None)` when the server offers neither method or there is
/// no way to ask; `Err(Some(why))` for the "tried:" list.
async fn interactive(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    cfg: &HostConfig,
) -> Result<(), Option<String>> {
    let methods = match handle.authenticate_none(user).await {
        Ok(AuthResult::Success) => return Ok(()),
        Ok(AuthResult::Failure {
            remaining_methods, ..
        }) => remaining_methods,
        Err(_) => return Err(None),
    };
    let mut answered = 0;
    if methods.contains(&MethodKind::Password) {
        let prompt = format!("{user}@{}'s password: ", cfg.hostname);
        for _ in 0..cfg.password_prompts {
            let Some(password) = ask(&prompt).await else {
                return Err(Some(
                    "password (no terminal or SSH_ASKPASS to ask on)".into(),
                ));
            };
            answered += 1;
            match handle.authenticate_password(user, password).await {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(_) => debug!("password not accepted for {user}@{}", cfg.hostname),
                Err(_) => return Err(Some("password".into())),
            }
        }
        return Err(Some(format!("password ({answered} wrong)")));
    }
    if methods.contains(&MethodKind::KeyboardInteractive) {
        for _ in 0..cfg.password_prompts {
            let mut reply = handle
                .authenticate_keyboard_interactive_start(user, None::<String>)
                .await;
            loop {
                match reply {
                    Ok(KeyboardInteractiveAuthResponse::Success) => return Ok(()),
                    Ok(KeyboardInteractiveAuthResponse::Failure { .. }) => break,
                    Ok(KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. }) => {
                        let mut answers = Vec::with_capacity(prompts.len());
                        for p in &prompts {
                            let shown = format!(
                                "({user}@{}) {}",
                                cfg.hostname,
                                sanitize_line(p.prompt.as_bytes())
                            );
                            let Some(answer) = ask(&shown).await else {
                                return Err(Some(
                                    "keyboard-interactive (no terminal or SSH_ASKPASS to ask on)"
                                        .into(),
                                ));
                            };
                            answers.push(answer);
                        }
                        answered += 1;
                        reply = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await;
                    }
                    Err(_) => return Err(Some("keyboard-interactive".into())),
                }
            }
        }
        return Err(Some(format!(
            "keyboard-interactive ({answered} answers refused)"
        )));
    }
    Err(None)
}

/// One prompt, off the runtime's threads (it may wait for the user).
async fn ask(prompt: &str) -> Option<String> {
    let prompt = prompt.to_string();
    tokio::task::spawn_blocking(move || crate::prompt::ask_secret(&prompt))
        .await
        .ok()
        .flatten()
}
