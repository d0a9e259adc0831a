//! What the host allows of a session's forwarding, where sshd's own
//! configuration would decide it: the agent that runs a session is ours,
//! so these are the host's rules, the same for every chain.
//!
//! - `ssh -A` on a chain whose last hop is sudo, su or doas would put the
//!   operator's ssh-agent in a socket of that account: every process of
//!   that account could then sign with the operator's keys. Only with
//!   `--forward-agent-across-users`; otherwise the session runs without
//!   an agent and the host says why in one line (as an sshd with
//!   `AllowAgentForwarding no` leaves the command running without one).
//! - `ssh -R ADDRESS:PORT:...` listens on the far side's loopback only,
//!   whatever the address, as sshd's default `GatewayPorts no`; with
//!   `--remote-gateway-ports`, on the address asked for (`*` or empty:
//!   every interface), as `GatewayPorts clientspecified`.

use router::hop::{Chain, Hop};
use router::session::{ListenAddress, RemoteCommand, SessionRequest};
use tracing::warn;

/// The host's forwarding rules (`--forward-agent-across-users`,
/// `--remote-gateway-ports`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardPolicy {
    pub agent_across_users: bool,
    pub remote_gateway_ports: bool,
}

impl ForwardPolicy {
    /// Make `request`, for a session on `chain`, what the rules allow.
    pub fn apply(&self, session: &str, chain: &Chain, request: &mut SessionRequest) {
        if request.forward_agent
            && !self.agent_across_users
            && let Some(user) = chain.hops.last().and_then(Hop::target_user)
        {
            request.forward_agent = false;
            warn!(
                "{session}: not forwarding the agent to {user} on {chain}: every process of {user} could use it (--forward-agent-across-users allows it)"
            );
        }
        if !self.remote_gateway_ports
            && let RemoteCommand::Listen(ListenAddress::Tcp { bind, .. }) = &mut request.command
        {
            *bind = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: RemoteCommand, forward_agent: bool) -> SessionRequest {
        SessionRequest {
            host: "h".into(),
            user: None,
            port: None,
            command,
            env: Vec::new(),
            pty: None,
            ssh_options: Vec::new(),
            ssh_config_file: None,
            forward_agent,
        }
    }

    fn chain(text: &str) -> Chain {
        text.parse().unwrap()
    }

    #[test]
    fn the_agent_stops_where_the_user_changes() {
        let strict = ForwardPolicy::default();
        for (text, kept) in [
            ("ssh:web", true),
            ("local", true),
            ("ssh:web,sudo:mfs-webapp", false),
            ("ssh:web,su:root", false),
            ("local,doas:root", false),
        ] {
            let mut req = request(RemoteCommand::Shell, true);
            strict.apply("s", &chain(text), &mut req);
            assert_eq!(req.forward_agent, kept, "{text}");
        }
        let open = ForwardPolicy {
            agent_across_users: true,
            ..ForwardPolicy::default()
        };
        let mut req = request(RemoteCommand::Shell, true);
        open.apply("s", &chain("ssh:web,sudo:mfs-webapp"), &mut req);
        assert!(req.forward_agent);
    }

    #[test]
    fn remote_listeners_stay_on_loopback_unless_allowed() {
        let listen = |bind: &str| {
            RemoteCommand::Listen(ListenAddress::Tcp {
                bind: Some(bind.to_string()),
                port: 9,
            })
        };
        let mut req = request(listen("*"), false);
        ForwardPolicy::default().apply("s", &chain("ssh:web"), &mut req);
        assert_eq!(
            req.command,
            RemoteCommand::Listen(ListenAddress::Tcp {
                bind: None,
                port: 9
            })
        );
        let open = ForwardPolicy {
            remote_gateway_ports: true,
            ..ForwardPolicy::default()
        };
        let mut req = request(listen("*"), false);
        open.apply("s", &chain("ssh:web"), &mut req);
        assert_eq!(req.command, listen("*"));
    }
}
