//! Forwarding (`-L`, `-R`, `-D`, `-W`, `-A`, with `-N` and `-f`): listeners
//! on this side ([`local`]), far-side listeners and the forwarded agent
//! ([`remote`]), SOCKS ([`socks`]), and each forwarded connection as a
//! session whose socket the host serves ([`connection`]). The ssh config's
//! `LocalForward`, `RemoteForward`, `DynamicForward`, `ForwardAgent`,
//! `ExitOnForwardFailure`, `GatewayPorts` and `ClearAllForwardings` count,
//! with OpenSSH's defaults.

pub mod connection;
pub mod local;
pub mod remote;
pub mod socks;
pub mod spec;

use ssh_config::HostConfig;

use crate::argv::SshInvocation;
use spec::{Connect, Forward, Listen, SpecError};

/// Every forward one ssh invocation asks for.
#[derive(Debug, Default)]
pub struct Forwards {
    pub local: Vec<Forward>,
    pub remote: Vec<Forward>,
    pub dynamic: Vec<Listen>,
    pub exit_on_failure: bool,
    pub gateway_ports: bool,
}

impl Forwards {
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.dynamic.is_empty()
    }
}

/// The values of `key` obtained from the ssh config (and `-o`), in order.
fn values<'a>(cfg: &'a HostConfig, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    let key = key.to_ascii_lowercase();
    cfg.obtained
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&key))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
}

fn yes(cfg: &HostConfig, key: &str) -> bool {
    values(cfg, key)
        .next()
        .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"))
}

/// The command line's forwards, then the config's (two words joined by
/// `:`, as OpenSSH joins `LocalForward 8080 db:5432`); none at all with
/// `ClearAllForwardings yes` (scp asks for that).
pub fn collect(inv: &SshInvocation, cfg: &HostConfig) -> Result<Forwards, SpecError> {
    let mut f = Forwards {
        exit_on_failure: yes(cfg, "exitonforwardfailure"),
        gateway_ports: yes(cfg, "gatewayports"),
        ..Forwards::default()
    };
    if yes(cfg, "clearallforwardings") {
        return Ok(f);
    }
    f.local = inv.local_forwards.clone();
    f.remote = inv.remote_forwards.clone();
    f.dynamic = inv.dynamic_forwards.clone();
    let joined = |line: &str| {
        let words = ssh_config::split::words(line).unwrap_or_default();
        words.join(":")
    };
    for line in values(cfg, "localforward") {
        f.local.push(spec::parse_forward(&joined(line), false)?);
    }
    for line in values(cfg, "remoteforward") {
        f.remote.push(spec::parse_forward(&joined(line), true)?);
    }
    for line in values(cfg, "dynamicforward") {
        f.dynamic.push(spec::parse_dynamic(line.trim())?);
    }
    Ok(f)
}

/// The agent to forward (`-A`, `ForwardAgent yes`, or `ForwardAgent PATH`
/// or `$VAR`): its socket on this side, if forwarding and there is one.
pub fn agent_socket(inv: &SshInvocation, cfg: &HostConfig) -> Option<Connect> {
    let value = match inv.forward_agent {
        Some(true) => "yes",
        Some(false) => return None,
        None => values(cfg, "forwardagent").next()?,
    };
    let path = match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => std::env::var("SSH_AUTH_SOCK").ok()?,
        "no" | "false" => return None,
        _ => match value.strip_prefix('$') {
            Some(var) => std::env::var(var).ok()?,
            None => value.to_string(),
        },
    };
    (!path.is_empty()).then_some(Connect::Unix(path))
}

/// A forward that failed under `ExitOnForwardFailure` (OpenSSH's message
/// is said already): ssh ends with 255.
#[derive(Debug, thiserror::Error)]
#[error("a forward failed")]
pub struct ForwardFailed;

/// Bind this side's listeners and ask for the far side's, then serve them
/// (threads); OpenSSH's messages for what failed. `Err` when a failure
/// must end ssh (`ExitOnForwardFailure`).
pub fn start(forwards: &Forwards, template: &connection::Template) -> Result<(), ForwardFailed> {
    use crate::out::say;
    let failed = |what: &str| {
        if forwards.exit_on_failure {
            say!("Could not request {what} forwarding.");
            Err(ForwardFailed)
        } else {
            say!("Warning: Could not request {what} forwarding.");
            Ok(())
        }
    };
    let mut serve = Vec::new();
    let locals = forwards
        .local
        .iter()
        .map(|f| (&f.listen, local::Purpose::Forward(f.connect.clone())));
    let dynamics = forwards.dynamic.iter().map(|l| (l, local::Purpose::Socks));
    for (listen, purpose) in locals.chain(dynamics) {
        let bound = local::bind(listen, forwards.gateway_ports);
        for error in &bound.errors {
            say!("{error}");
        }
        match bound.listener {
            Some(listener) => serve.push((listener, purpose)),
            None => failed("local")?,
        }
    }
    for forward in &forwards.remote {
        let asked = match &forward.listen {
            Listen::Tcp { port, .. } => *port,
            Listen::Unix(_) => 0,
        };
        match remote::listen(forward, template) {
            Ok(port) => {
                if asked == 0
                    && let (Listen::Tcp { .. }, Connect::Tcp { host, port: to }) =
                        (&forward.listen, &forward.connect)
                {
                    say!("Allocated port {port} for remote forward to {host}:{to}");
                }
            }
            Err(why) => {
                template.log.debug(&why.to_string());
                let which = match &forward.listen {
                    Listen::Tcp { port, .. } => format!("listen port {port}"),
                    Listen::Unix(path) => format!("listen path {path}"),
                };
                if forwards.exit_on_failure {
                    say!("Error: remote port forwarding failed for {which}");
                    return Err(ForwardFailed);
                }
                say!("Warning: remote port forwarding failed for {which}");
            }
        }
    }
    for (listener, purpose) in serve {
        listener.serve(purpose, template.clone());
    }
    Ok(())
}
