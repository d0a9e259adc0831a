//! The host role: parse the chains, connect, run COMMAND with the shims
//! first on its PATH, relay sessions, exit with COMMAND's status.
//!
//! - [`routing`]: which chain serves a hostname;
//! - [`connector`]: the contexts established for chains;
//! - [`launcher`]: COMMAND, its shim directory and control socket;
//! - [`accept`]: sessions arriving on the control and fallback sockets;
//! - [`relay`]: one session, from request to teardown;
//! - [`delivery`]: the stdio a shim handed over, served here.

mod accept;
mod connector;
mod delivery;
mod launcher;
mod relay;
mod routing;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use router_core::Router;
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::hop::{Chain, ChainError};
use router_core::message::HOST_ID;

use crate::cli::Cli;
use crate::hop::ssh::SshSettings;
use connector::Connector;
use launcher::EXIT_FAILURE;
use routing::{MappingError, Routing, parse_host_mapping};
use ssh_config::{ConfigError, SshConfig};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("--to: {0}")]
    To(ChainError),
    #[error("--to: {0}")]
    ToNames(#[from] routing::InvalidName),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("--ssh-config {}: no such file", .0.display())]
    NoSshConfig(PathBuf),
    #[error(transparent)]
    SshConfig(#[from] ConfigError),
    #[error("--password-file {}: {source}", .path.display())]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Agents(#[from] crate::hop::agents::AgentError),
}

pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_FAILURE,
            };
            let _ = e.print();
            return code;
        }
    };
    crate::logging::init(cli.log_level(), None);
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            EXIT_FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<i32, StartError> {
    let routing = routing_from(cli)?;
    let ssh = ssh_settings(cli)?;
    let agents = crate::hop::agents::discover(&cli.agents)?;
    let runtime = crate::roles::runtime().map_err(StartError::Runtime)?;
    let code = runtime.block_on(async {
        let router = Router::new(HOST_ID, vec![], DEFAULT_MAX_PAYLOAD);
        let connector = Connector::new(
            router.clone(),
            routing,
            cli.log_level(),
            ssh,
            agents,
            cli.agent_dir.clone(),
        );
        let code = launcher::run(cli, router, connector.clone()).await;
        connector.shutdown().await;
        code
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(code)
}

fn routing_from(cli: &Cli) -> Result<Routing, StartError> {
    let default = cli
        .to
        .as_deref()
        .map(|t| t.parse::<Chain>().map_err(StartError::To))
        .transpose()?;
    if let Some(chain) = &default {
        routing::check_names(chain)?;
    }
    let hosts = cli
        .hosts
        .iter()
        .map(|h| parse_host_mapping(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Routing { default, hosts })
}

/// ssh_config (`--ssh-config` alone, like `ssh -F`; else the user's file,
/// then the system's) and the password file.
fn ssh_settings(cli: &Cli) -> Result<SshSettings, StartError> {
    let config = match &cli.ssh_config {
        Some(path) => {
            if !path.is_file() {
                return Err(StartError::NoSshConfig(path.clone()));
            }
            SshConfig::load_user(path)?
        }
        None => SshConfig::load_default()?,
    };
    let password = match &cli.password_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| StartError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    Ok(SshSettings { config, password })
}
