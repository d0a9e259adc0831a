//! Our agent, started over a new session channel on an ssh connection.

use std::sync::Arc;

use router::connection::{FrameReader, FrameWriter};
use router::frame::DEFAULT_MAX_PAYLOAD;
use router::message::AgentConfig;

use super::connect::Connection;
use super::error::SshError;
use super::transport::{self, ChannelReader, ChannelWriter};
use crate::hop::agents::Agents;
use crate::hop::bootstrap::{self, Placement};
use crate::hop::handshake::{self, StartedAgent};

/// An agent behind an ssh channel.
pub type SshAgent = StartedAgent<ChannelReader, ChannelWriter>;

/// Start our agent over a new session channel on `connection` (which
/// lives as long as the agent's channel, or longer if it is held on to:
/// [`super::lanes`] opens more channels on it).
pub async fn start(
    connection: Arc<Connection>,
    agent_config: AgentConfig,
    agents: &Agents,
    placement: &Placement,
    upload_slots: &tokio::sync::Semaphore,
) -> Result<SshAgent, SshError> {
    let name = agent_config.name.clone();
    let images = bootstrap::images(agents).await?;
    let channel = connection
        .channel_open_session()
        .await
        .map_err(SshError::Channel)?;
    channel
        .exec(false, bootstrap::command(&images, placement))
        .await
        .map_err(SshError::Exec)?;
    let (mut reader, mut writer, stderr_tail) = transport::split(&name, channel, connection);
    let quiet = agent_config.log_level == 0;
    let booted = bootstrap::run(
        &name,
        &mut reader,
        &mut writer,
        agents,
        quiet,
        Some(upload_slots),
    )
    .await
    .map_err(|e| SshError::from(e).with_output(stderr_tail.lines()))?;
    let (reader, writer, hello) = handshake::run(
        FrameReader::new(reader, DEFAULT_MAX_PAYLOAD),
        FrameWriter::new(writer),
        &agent_config,
    )
    .await
    .map_err(|e| SshError::from(e).with_output(stderr_tail.lines()))?;
    Ok(StartedAgent {
        reader,
        writer,
        hello,
        process: None,
        uploaded: booted.uploaded,
    })
}
