//! Starting a hop from this process: the host for a chain's first hop, an
//! agent for later ones. ssh hops never start here: the host makes them
//! itself, through the hop before if there is one.

use router::hop::Hop;
use router::message::{AgentConfig, Secret};

use super::error::HopFailure;
use super::handshake::LocalAgent;
use super::{local, privilege};

/// Start `hop`, a local or privilege hop.
pub async fn start(
    hop: &Hop,
    password: Option<&Secret>,
    config: AgentConfig,
    agent_dir: Option<String>,
) -> Result<LocalAgent, HopFailure> {
    match hop {
        Hop::Local => local::start(config).await,
        Hop::Sudo { .. } | Hop::Su { .. } | Hop::Doas { .. } => {
            privilege::start(hop, password, config, agent_dir).await
        }
        Hop::Ssh { .. } => Err(HopFailure::SshFromAgent),
    }
}
