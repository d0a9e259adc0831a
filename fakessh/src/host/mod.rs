//! The host role: parse the chains, connect, run COMMAND with the shims
//! first on its PATH, relay sessions, exit with COMMAND's status.

mod connector;
mod launcher;
mod served;
mod sessions;
mod tunnel;

use std::ffi::OsString;

use clap::Parser;
use router_core::Router;
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::HOST_ID;

use crate::chain::{Chain, parse_host_mapping};
use crate::cli::Cli;
use crate::ssh::SshSettings;
use crate::ssh::config::{SshConfig, home_dir};
use connector::{Connector, Routing};

/// Exit status when mitogen-fakessh fails before the command ran.
pub const EXIT_FAILURE: i32 = 255;

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
    let routing = match routing_from(&cli) {
        Ok(r) => r,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            return EXIT_FAILURE;
        }
    };
    let ssh = match ssh_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            return EXIT_FAILURE;
        }
    };
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: cannot start the runtime: {e}"));
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let router = Router::new(HOST_ID, vec![], DEFAULT_MAX_PAYLOAD);
        let connector = Connector::new(router.clone(), routing, cli.log_level(), ssh);
        let code = launcher::run(&cli, router, connector.clone()).await;
        connector.shutdown().await;
        code
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

fn routing_from(cli: &Cli) -> Result<Routing, String> {
    let default = cli
        .to
        .as_deref()
        .map(|t| t.parse::<Chain>().map_err(|e| format!("--to: {e}")))
        .transpose()?;
    let hosts = cli
        .hosts
        .iter()
        .map(|h| parse_host_mapping(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Routing { default, hosts })
}

/// ssh_config (`--ssh-config` alone, like `ssh -F`; else the user's file,
/// then the system's) and the password file.
fn ssh_settings(cli: &Cli) -> Result<SshSettings, String> {
    let config = match &cli.ssh_config {
        Some(path) => {
            if !path.is_file() {
                return Err(format!("--ssh-config {}: no such file", path.display()));
            }
            SshConfig::load_user(path)?
        }
        None => SshConfig::load_user(&home_dir().join(".ssh/config"))?
            .chain(SshConfig::load_system("/etc/ssh/ssh_config".as_ref())?),
    };
    let password = match &cli.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--password-file {}: {e}", path.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    Ok(SshSettings { config, password })
}
