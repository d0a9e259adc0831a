//! Host and user names in chains, checked as OpenSSH checks its command
//! line, so that none can inject a command through `%h` or `%r`.

use router::hop::{Chain, Hop};

/// A chain whose ssh hop names a host or user OpenSSH would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{chain}: the host or user of {hop} contains invalid characters")]
pub struct InvalidName {
    pub chain: String,
    pub hop: String,
}

/// Check the names of `chain`'s ssh hops.
pub fn check_names(chain: &Chain) -> Result<(), InvalidName> {
    for hop in &chain.hops {
        if let Hop::Ssh { user, host, .. } = hop
            && (!ssh_config::valid_hostname(host)
                || user.as_deref().is_some_and(|u| !ssh_config::valid_user(u)))
        {
            return Err(InvalidName {
                chain: chain.to_string(),
                hop: hop.to_string(),
            });
        }
    }
    Ok(())
}
