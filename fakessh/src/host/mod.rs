//! The host role: parse the chains, connect, run COMMAND with the shims
//! first on its PATH, relay sessions, exit with COMMAND's status.

mod connector;
mod launcher;
mod sessions;

use std::ffi::OsString;

use clap::Parser;
use router_core::Router;
use router_core::frame::DEFAULT_MAX_PAYLOAD;
use router_core::message::HOST_ID;

use crate::chain::{Chain, parse_host_mapping};
use crate::cli::Cli;
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
            eprintln!("mitogen-fakessh: {e}");
            return EXIT_FAILURE;
        }
    };
    if cli.ssh_config.is_some() || cli.password_file.is_some() {
        tracing::debug!("--ssh-config and --password-file apply to ssh and privilege hops");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mitogen-fakessh: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let router = Router::new(HOST_ID, vec![], DEFAULT_MAX_PAYLOAD);
        let connector = Connector::new(router.clone(), routing, cli.log_level());
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
