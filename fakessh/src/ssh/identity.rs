//! Key files for public-key authentication: load one, ask for the
//! passphrase of an encrypted one the way OpenSSH does, and keep the
//! unlocked key for the rest of the run so later hops do not ask again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use russh::keys::{Error as KeyError, PrivateKey, load_secret_key};

use super::config::HostConfig;

/// A key file, loaded or not.
pub enum KeyFile {
    Ready(Arc<PrivateKey>),
    /// Why it could not be used, for the "tried:" list of the error.
    Unusable(String),
}

/// Keys unlocked with a passphrase in this run, by path.
fn unlocked() -> &'static Mutex<HashMap<PathBuf, Arc<PrivateKey>>> {
    static UNLOCKED: OnceLock<Mutex<HashMap<PathBuf, Arc<PrivateKey>>>> = OnceLock::new();
    UNLOCKED.get_or_init(Default::default)
}

/// One prompt at a time: hops connecting in parallel with the same key
/// would otherwise ask together, and the second would not see the first's
/// answer.
static PROMPTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Load `path` (shown to the user as `shown`), asking for its passphrase if
/// it is encrypted: up to `cfg.passphrase_prompts` times, never with
/// BatchMode; an empty answer moves on to the next key, as in OpenSSH.
pub async fn load(path: &Path, shown: &str, cfg: &HostConfig) -> KeyFile {
    match load_secret_key(path, None) {
        Ok(key) => return KeyFile::Ready(Arc::new(key)),
        Err(KeyError::KeyIsEncrypted) => {}
        Err(e) => return KeyFile::Unusable(format!("{shown} (unreadable: {e})")),
    }
    let cached = |path: &Path| unlocked().lock().ok()?.get(path).cloned();
    if let Some(key) = cached(path) {
        return KeyFile::Ready(key);
    }
    if cfg.passphrase_prompts == 0 {
        return KeyFile::Unusable(format!(
            "{shown} (encrypted, and BatchMode forbids asking: load it into ssh-agent)"
        ));
    }
    let _turn = PROMPTING.lock().await;
    if let Some(key) = cached(path) {
        return KeyFile::Ready(key);
    }
    let prompt = format!("Enter passphrase for key '{}': ", path.display());
    for _ in 0..cfg.passphrase_prompts {
        let answer = tokio::task::spawn_blocking({
            let prompt = prompt.clone();
            move || crate::prompt::ask_secret(&prompt)
        })
        .await
        .ok()
        .flatten();
        let passphrase = match answer {
            None => {
                return KeyFile::Unusable(format!(
                    "{shown} (encrypted, and there is no terminal or SSH_ASKPASS to ask for its passphrase: load it into ssh-agent)"
                ));
            }
            Some(p) if p.is_empty() => {
                return KeyFile::Unusable(format!("{shown} (encrypted; no passphrase given)"));
            }
            Some(p) => p,
        };
        match load_secret_key(path, Some(&passphrase)) {
            Ok(key) => {
                let key = Arc::new(key);
                if let Ok(mut keys) = unlocked().lock() {
                    keys.insert(path.to_path_buf(), key.clone());
                }
                return KeyFile::Ready(key);
            }
            Err(e) => tracing::debug!("{shown}: passphrase not accepted: {e}"),
        }
    }
    KeyFile::Unusable(format!(
        "{shown} (encrypted; wrong passphrase, {} tries)",
        cfg.passphrase_prompts
    ))
}
