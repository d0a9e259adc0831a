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
mod config_file;
mod connector;
mod delivery;
mod explain;
mod launcher;
mod relay;
mod routing;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use router_core::Router;
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::HOST_ID;

use crate::cli::Cli;
use crate::hop::ssh::SshSettings;
pub use config_file::{ConfigFile, ConfigFileError};
use connector::Connector;
use launcher::EXIT_FAILURE;
use routing::{MappingError, Routing, Rule};
use ssh_config::{ConfigError, SshConfig};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
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
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
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
    let started = ConfigFile::load(cli.config.as_deref())
        .map_err(StartError::from)
        .and_then(|file| {
            let cli = with_defaults(cli, &file);
            crate::logging::init(cli.log_level(), None);
            run(&cli, file)
        });
    match started {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            EXIT_FAILURE
        }
    }
}

/// Fill in what the command line left out from the config file.
fn with_defaults(mut cli: Cli, file: &ConfigFile) -> Cli {
    if cli.ssh_config.is_none() {
        cli.ssh_config = file.ssh_config.clone();
    }
    if cli.password_file.is_none() {
        cli.password_file = file.password_file.clone();
    }
    if cli.agent_dir.is_none() {
        cli.agent_dir = file.agent_dir.clone();
    }
    cli.agents.extend(file.agents.iter().cloned());
    if cli.verbose == 0 && !cli.quiet {
        cli.verbose = file.verbose.unwrap_or(0);
        cli.quiet = file.quiet.unwrap_or(false) && cli.verbose == 0;
    }
    cli
}

fn run(cli: &Cli, file: ConfigFile) -> Result<i32, StartError> {
    let routing = routing_from(cli, file)?;
    let ssh = ssh_settings(cli)?;
    if let Some(host) = &cli.explain {
        print!("{}", explain::explain(&routing, &ssh.config, host)?);
        return Ok(0);
    }
    let agents = crate::hop::agents::discover(&cli.agents)?;
    let fd_limit = crate::sys::raise_fd_limit();
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
        let code = launcher::run(cli, router, connector.clone(), fd_limit).await;
        connector.shutdown().await;
        code
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(code)
}

/// The command line's rules (`--host` in order, then `--to`), then the
/// config file's.
fn routing_from(cli: &Cli, file: ConfigFile) -> Result<Routing, StartError> {
    let mut rules = cli
        .hosts
        .iter()
        .map(|h| Rule::from_host_flag(h))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(to) = &cli.to {
        rules.push(Rule::from_to_flag(to)?);
    }
    rules.extend(file.rules);
    Ok(Routing { rules })
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
