//! The host role: parse the chains, connect, run COMMAND with the shims
//! first on its PATH, relay sessions, exit with COMMAND's status.
//!
//! - [`routing`]: which chain serves a hostname;
//! - [`connector`]: the contexts established for chains;
//! - [`launcher`]: COMMAND, its shim directory and control socket;
//! - [`accept`]: sessions arriving on the control and fallback sockets;
//! - [`relay`]: one session, from request to teardown;
//! - [`forward_policy`]: the agent and `-R` addresses a session may have;
//! - [`delivery`]: the stdio a shim handed over, served here.

pub mod accept;
mod client_options;
mod connector;
mod delivery;
mod explain;
pub mod forward_policy;
mod launcher;
pub mod lifetime;
mod master;
mod password_file;
mod relay;
mod routing;
pub mod stats;

use std::path::PathBuf;

use router::Router;
use router::frame::DEFAULT_MAX_PAYLOAD;
use router::message::{HOST_ID, Secret};

use std::sync::Arc;

use crate::cli::{Cli, HostArgs};
use crate::hop::ssh::SshSettings;
pub use connector::Connector;
pub use launcher::EXIT_FAILURE;
use routing::{MappingError, Routing, Rule};
use ssh_config::{ConfigError, SshConfig};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("--ssh-config {}: no such file", .0.display())]
    NoSshConfig(PathBuf),
    #[error(transparent)]
    SshConfig(#[from] ConfigError),
    #[error(transparent)]
    PasswordFile(#[from] password_file::PasswordFileError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Agents(#[from] crate::hop::agents::AgentError),
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
}

/// Run COMMAND (or answer `--explain`) as the command line says.
pub fn main(cli: Cli) -> i32 {
    match prepare(cli.host.clone()).and_then(|prepared| run(&cli, prepared)) {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            EXIT_FAILURE
        }
    }
}

/// Print a clap error (or help); the exit status for it.
pub fn usage_error(e: clap::Error) -> i32 {
    let code = match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
        _ => EXIT_FAILURE,
    };
    let _ = e.print();
    code
}

/// What a host needs, from its flags and the config file.
pub struct Prepared {
    pub args: HostArgs,
    pub routing: Routing,
    pub ssh: SshSettings,
    /// `--password-file`: for sudo/su/doas hops only, never for an sshd.
    pub privilege_password: Option<Secret>,
    pub agents: crate::hop::agents::Agents,
}

/// Start logging, and build the routing table, the ssh settings and the
/// agent list from the options (the config file's among them).
pub fn prepare(args: HostArgs) -> Result<Prepared, StartError> {
    crate::logging::init(args.log_level(), None);
    let routing = routing_from(&args)?;
    let ssh = ssh_settings(&args)?;
    let privilege_password = match &args.password_file {
        Some(path) => Some(password_file::read(path)?),
        None => None,
    };
    let agents = crate::hop::agents::discover(&args.agents)?;
    Ok(Prepared {
        args,
        routing,
        ssh,
        privilege_password,
        agents,
    })
}

impl Prepared {
    /// The router and connector of a host, in the current runtime; lost
    /// contexts are forgotten at once, so that their next session
    /// reconnects.
    pub fn connector(self) -> (Arc<Router>, Arc<Connector>) {
        let router = Router::new(HOST_ID, vec![], DEFAULT_MAX_PAYLOAD);
        let options = connector::ConnectorOptions {
            log_level: self.args.log_level(),
            agent_dir: self.args.agent_dir.clone(),
            lanes: self
                .args
                .lanes
                .unwrap_or(1 + router::lane_rules::MAX_EXTRA_LANES),
            forwarding: forward_policy::ForwardPolicy {
                agent_across_users: self.args.forward_agent_across_users,
                remote_gateway_ports: self.args.remote_gateway_ports,
            },
        };
        let connector = Connector::new(
            router.clone(),
            self.routing,
            self.ssh,
            self.privilege_password,
            self.agents,
            options,
        );
        tokio::spawn(lifetime::forget_lost(
            Arc::downgrade(&connector),
            router.clone(),
        ));
        (router, connector)
    }
}

fn run(cli: &Cli, prepared: Prepared) -> Result<i32, StartError> {
    if let Some(host) = &cli.explain {
        print!(
            "{}",
            explain::explain(&prepared.routing, &prepared.ssh.config, host)?
        );
        return Ok(0);
    }
    let fd_limit = crate::sys::raise_fd_limit();
    let runtime = crate::roles::runtime().map_err(StartError::Runtime)?;
    let args = prepared.args.clone();
    let code = runtime.block_on(async {
        let (router, connector) = prepared.connector();
        let code = launcher::run(cli, &args, router, connector.clone(), fd_limit).await;
        connector.shutdown().await;
        code
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(code)
}

/// The command line's rules (`--host` in order, then `--to`), then the
/// config file's (its `[[host]]` tables in order, then its `to`).
fn routing_from(args: &HostArgs) -> Result<Routing, StartError> {
    let file = args.from_file.as_ref();
    let file_hosts = file.map_or(0, |f| f.hosts.len());
    let (ours, theirs) = args.hosts.split_at(args.hosts.len() - file_hosts);
    let mut rules = ours
        .iter()
        .map(Rule::from_host_flag)
        .collect::<Result<Vec<_>, _>>()?;
    let to = args.to.as_deref();
    let file_to = file.and_then(|f| f.to.map(|line| (&f.path, line)));
    if let (Some(to), None) = (to, file_to) {
        rules.push(Rule::from_to_flag(to)?);
    }
    if let Some(file) = file {
        for (flag, written) in theirs.iter().zip(&file.hosts) {
            rules.push(Rule::from_file_host(flag, &file.path, written)?);
        }
    }
    if let (Some(to), Some((path, line))) = (to, file_to) {
        rules.push(Rule::from_file_to(to, path, line)?);
    }
    Ok(Routing { rules })
}

/// ssh_config (`--ssh-config` alone, like `ssh -F`; else the user's file,
/// then the system's).
fn ssh_settings(args: &HostArgs) -> Result<SshSettings, StartError> {
    let config = match &args.ssh_config {
        Some(path) => {
            if !path.is_file() {
                return Err(StartError::NoSshConfig(path.clone()));
            }
            SshConfig::load_user(path)?
        }
        None => SshConfig::load_default()?,
    };
    Ok(SshSettings { config })
}
