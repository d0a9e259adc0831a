//! The ssh configuration a shim invocation resolves to, as OpenSSH's
//! client resolves it: `-o` options first, then `-F FILE` (or the host's
//! `--ssh-config`, or `~/.ssh/config` and `/etc/ssh/ssh_config`).
//! `SendEnv`, `SetEnv`, `RemoteCommand` and `RequestTTY` come from it, and
//! `ssh -G` prints it. It is resolved for this invocation's command and
//! session type (`Match command`, `Match sessiontype`), and a
//! `RefuseConnection` that applies stops the shim with OpenSSH's message.

use ssh_config::{HostConfig, SshConfig};

use crate::argv::SshInvocation;
use crate::env;
use crate::error::ShimError;

/// The settings for the invocation's destination.
pub fn resolve(inv: &SshInvocation) -> Result<HostConfig, ShimError> {
    let config = match (&inv.config_file, std::env::var_os(env::SSH_CONFIG)) {
        (Some(file), _) if file == "none" => SshConfig::default(),
        (Some(file), _) => {
            let path = std::path::Path::new(file);
            if !path.is_file() {
                return Err(ShimError::NoConfigFile(file.clone()));
            }
            SshConfig::load_user(path)?
        }
        (None, Some(file)) => SshConfig::load_user(std::path::Path::new(&file))?,
        (None, None) => SshConfig::load_default()?,
    };
    Ok(config.resolve_for(
        &inv.host,
        inv.user.as_deref(),
        inv.port,
        &inv.options,
        &inv.session_asked(),
    )?)
}

/// `ssh -G`: the resolved configuration, as OpenSSH prints it.
pub fn print(cfg: &HostConfig) {
    print!(
        "{}",
        ssh_config::print::config(cfg, &ssh_config::local_user())
    );
}
