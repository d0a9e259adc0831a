//! Key files for public-key authentication, as OpenSSH uses them: a plain
//! key is offered as it is; an encrypted one is first offered by its public
//! half, and its passphrase is asked for only if the server would take it.
//! An unlocked key is kept for the rest of the run so later hops do not
//! ask again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use russh::keys::agent::AgentIdentity;
use russh::keys::{Error as KeyError, HashAlg, PrivateKey, PublicKey, load_secret_key};

use ssh_config::HostConfig;

/// A key file as found on disk.
pub enum KeyFile {
    Ready(Arc<PrivateKey>),
    /// Encrypted and not unlocked yet; its public half, when the file (or
    /// `PATH.pub` next to it) tells it without the passphrase.
    Locked(Option<PublicKey>),
    /// Ours, and readable or writable by others: never loaded (OpenSSH's
    /// "UNPROTECTED PRIVATE KEY FILE"). Its public half, to ask the server
    /// about first, as OpenSSH does before it would load the key.
    Unprotected {
        public: Option<PublicKey>,
        mode: u32,
    },
    /// Why it cannot be used, for the "tried:" list of the error.
    Unusable(KeyProblem),
}

/// Why a key file was not used; shown in the "tried:" list.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("{shown} (unreadable: {reason})")]
    Unreadable { shown: String, reason: KeyError },
    #[error("{0} (encrypted; not accepted by the server)")]
    NotAccepted(String),
    #[error("{0} (encrypted, and BatchMode forbids asking: load it into ssh-agent)")]
    BatchMode(String),
    #[error(
        "{0} (encrypted, and there is no terminal or SSH_ASKPASS to ask for its passphrase: load it into ssh-agent)"
    )]
    NoWayToAsk(String),
    #[error("{0} (encrypted; no passphrase given)")]
    NoPassphrase(String),
    #[error("{shown} (encrypted; wrong passphrase, {tries} tries)")]
    WrongPassphrase { shown: String, tries: u32 },
    #[error("{0} (bad permissions)")]
    BadPermissions(String),
}

impl KeyFile {
    /// The public key, as far as the file tells without a passphrase.
    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            KeyFile::Ready(key) => Some(key.public_key().clone()),
            KeyFile::Locked(public) | KeyFile::Unprotected { public, .. } => public.clone(),
            KeyFile::Unusable(_) => None,
        }
    }
}

/// Keys unlocked with a passphrase in this run, by path.
fn unlocked() -> &'static Mutex<HashMap<PathBuf, Arc<PrivateKey>>> {
    static UNLOCKED: OnceLock<Mutex<HashMap<PathBuf, Arc<PrivateKey>>>> = OnceLock::new();
    UNLOCKED.get_or_init(Default::default)
}

fn cached(path: &Path) -> Option<Arc<PrivateKey>> {
    unlocked().lock().ok()?.get(path).cloned()
}

/// One prompt at a time: hops connecting in parallel with the same key
/// would otherwise ask together, and the second would not see the first's
/// answer.
static PROMPTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Read `path` (shown to the user as `shown`) without asking anything.
/// A key file of ours that others may read is not loaded at all.
pub fn open(path: &Path, shown: &str) -> KeyFile {
    if let Some(mode) = too_open(path) {
        return KeyFile::Unprotected {
            public: public_half(path),
            mode,
        };
    }
    match load_secret_key(path, None) {
        Ok(key) => KeyFile::Ready(Arc::new(key)),
        Err(KeyError::KeyIsEncrypted) => match cached(path) {
            Some(key) => KeyFile::Ready(key),
            None => KeyFile::Locked(public_half(path)),
        },
        Err(reason) => KeyFile::Unusable(KeyProblem::Unreadable {
            shown: shown.to_string(),
            reason,
        }),
    }
}

/// The permission bits of `path` when it is ours and any of them lets
/// another account in (OpenSSH's `sshkey_perm_ok`: a key file owned by
/// another user, as root reading one, is not its business).
fn too_open(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o777;
    (meta.uid() == nix::unistd::getuid().as_raw() && mode & 0o077 != 0).then_some(mode)
}

/// What OpenSSH prints when it would load a key file that others may
/// read (authfile.c and sshconnect2.c), word for word: `path` as given in
/// the configuration, the block, then the refusal.
pub fn refuse_unprotected(path: &Path, mode: u32) {
    let path = path.display();
    eprint!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Permissions 0{mode:03o} for '{path}' are too open.\n\
         It is required that your private key files are NOT accessible by others.\n\
         This private key will be ignored.\n\
         Load key \"{path}\": bad permissions\n"
    );
}

/// The public key of an encrypted key file: stored in the clear in the
/// OpenSSH format; otherwise from `PATH.pub`, as OpenSSH looks for it.
fn public_half(path: &Path) -> Option<PublicKey> {
    let text = std::fs::read_to_string(path).ok()?;
    if let Ok(key) = russh::keys::ssh_key::PrivateKey::from_openssh(&text) {
        return Some(key.public_key().clone());
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
}

/// Ask for the passphrase of `path` and unlock it: up to
/// `cfg.password_prompts` times, never with BatchMode; an empty answer
/// gives up on this key, as in OpenSSH.
pub async fn unlock(
    path: &Path,
    shown: &str,
    cfg: &HostConfig,
) -> Result<Arc<PrivateKey>, KeyProblem> {
    if cfg.password_prompts == 0 {
        return Err(KeyProblem::BatchMode(shown.to_string()));
    }
    let _turn = PROMPTING.lock().await;
    if let Some(key) = cached(path) {
        return Ok(key);
    }
    let prompt = format!("Enter passphrase for key '{}': ", path.display());
    for _ in 0..cfg.password_prompts {
        let answer = tokio::task::spawn_blocking({
            let prompt = prompt.clone();
            move || crate::prompt::ask_secret(&prompt)
        })
        .await
        .ok()
        .flatten();
        let passphrase = match answer {
            None => return Err(KeyProblem::NoWayToAsk(shown.to_string())),
            Some(p) if p.is_empty() => return Err(KeyProblem::NoPassphrase(shown.to_string())),
            Some(p) => p,
        };
        match load_secret_key(path, Some(&passphrase)) {
            Ok(key) => {
                let key = Arc::new(key);
                if let Ok(mut keys) = unlocked().lock() {
                    keys.insert(path.to_path_buf(), key.clone());
                }
                return Ok(key);
            }
            Err(e) => tracing::debug!("{shown}: passphrase not accepted: {e}"),
        }
    }
    Err(KeyProblem::WrongPassphrase {
        shown: shown.to_string(),
        tries: cfg.password_prompts,
    })
}

/// The certificates to offer with `key` (from `path`): `PATH-cert.pub`, as
/// OpenSSH always looks for it, then CertificateFile entries; only those
/// that certify this very key.
pub fn certificates(
    path: &Path,
    key: &PublicKey,
    cfg: &HostConfig,
) -> Vec<(PathBuf, russh::keys::Certificate)> {
    let mut implicit = path.as_os_str().to_owned();
    implicit.push("-cert.pub");
    let mut candidates = vec![PathBuf::from(implicit)];
    for file in &cfg.certificate_files {
        if !candidates.contains(file) {
            candidates.push(file.clone());
        }
    }
    candidates
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| match russh::keys::load_openssh_certificate(&p) {
            Ok(cert) => Some((p, cert)),
            Err(e) => {
                tracing::warn!("cannot read certificate {}: {e}", p.display());
                None
            }
        })
        .filter(|(_, cert)| cert.public_key() == key.key_data())
        .collect()
}

/// A signer that never signs: the server asking for a signature
/// (SSH_MSG_USERAUTH_PK_OK) answers the question "would you take this
/// key?" without the key being unlocked.
pub struct Probe;

/// Why a [`Probe`] stopped.
#[derive(Debug)]
pub enum ProbeEnd {
    /// The server would take the key.
    Accepted,
    /// The connection went away.
    Lost,
}

impl From<russh::SendError> for ProbeEnd {
    fn from(_: russh::SendError) -> Self {
        ProbeEnd::Lost
    }
}

impl russh::Signer for Probe {
    type Error = ProbeEnd;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        _hash_alg: Option<HashAlg>,
        _to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, ProbeEnd> {
        Err(ProbeEnd::Accepted)
    }
}
