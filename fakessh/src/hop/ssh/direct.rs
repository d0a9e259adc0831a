//! How a chain's first ssh hop reaches its server: a TCP connection, a
//! ProxyCommand, or ProxyJump: ssh to each jump host in turn, then a
//! direct-tcpip channel to the target (like OpenSSH's `-J`). The jump
//! connections must live as long as the target's, so they are kept here.

use router::hop::parse_destination;
use tokio::sync::Mutex;

use super::connect::{Connection, SshStream, connect_tcp, open_session};
use super::error::SshError;
use super::proxy;
use ssh_config::{HostConfig, SshConfig};

/// The first ssh hop's stream: ProxyCommand, ProxyJump or plain TCP, the
/// first of the first two that the config names.
pub async fn stream(
    name: &str,
    cfg: &HostConfig,
    config: &SshConfig,
    jumps: &Jumps,
) -> Result<Box<dyn SshStream>, SshError> {
    Ok(match (&cfg.proxy_command, &cfg.proxy_jump) {
        (Some(command), _) => Box::new(proxy::connect(command)?),
        (None, Some(list)) => Box::new(jumps.through(name, list, cfg, config).await?),
        (None, None) => Box::new(connect_tcp(cfg).await?),
    })
}

/// The jump-host connections that carry ProxyJump targets.
#[derive(Default)]
pub struct Jumps {
    held: Mutex<Vec<Connection>>,
}

impl Jumps {
    /// A stream to `target` through the comma-separated jump hosts in `list`.
    pub async fn through(
        &self,
        name: &str,
        list: &str,
        target: &HostConfig,
        config: &SshConfig,
    ) -> Result<russh::ChannelStream<russh::client::Msg>, SshError> {
        let mut previous: Option<Connection> = None;
        for jump in list.split(',').map(str::trim) {
            let at_jump = |failure: SshError| SshError::Jump {
                jump: jump.to_string(),
                source: Box::new(failure),
            };
            let (user, host, port) =
                parse_destination(jump).map_err(|e| SshError::JumpSyntax(jump.to_string(), e))?;
            let cfg = tokio::task::block_in_place(|| config.resolve(&host, user.as_deref(), port))
                .map_err(|e| at_jump(e.into()))?;
            let jump_name = format!("{name} (ProxyJump {jump})");
            let connection = match previous.take() {
                None => {
                    let stream = connect_tcp(&cfg).await.map_err(at_jump)?;
                    open_session(&jump_name, &cfg, stream).await
                }
                Some(prev) => {
                    let stream = direct_tcpip(&prev, &cfg.hostname, cfg.port)
                        .await
                        .map_err(at_jump)?;
                    self.held.lock().await.push(prev);
                    open_session(&jump_name, &cfg, stream).await
                }
            }
            .map_err(at_jump)?;
            previous = Some(connection);
        }
        let last = previous.ok_or(SshError::EmptyJump)?;
        let stream = direct_tcpip(&last, &target.hostname, target.port).await?;
        self.held.lock().await.push(last);
        Ok(stream)
    }
}

async fn direct_tcpip(
    via: &Connection,
    host: &str,
    port: u16,
) -> Result<russh::ChannelStream<russh::client::Msg>, SshError> {
    via.channel_open_direct_tcpip(host, port as u32, "127.0.0.1", 0)
        .await
        .map(|c| c.into_stream())
        .map_err(|source| SshError::JumpChannel {
            host: host.to_string(),
            port,
            source,
        })
}
