//! `ssh -O check|exit|stop`, answered as OpenSSH's ControlMaster answers
//! them (mux.c's words), about the context that serves the destination:
//! `check` says whether it is up (the pid is the host's, which holds every
//! connection), `exit` and `stop` end it (its agents and their commands,
//! and every longer chain through it); the next session reconnects.

use router::hop::Chain;
use router::session::{MasterCommand, SessionRequest};
use tracing::info;

use super::connector::Connector;
use super::lifetime;

/// The words for the shim's stderr and its exit status.
pub async fn answer(
    connector: &Connector,
    request: &SessionRequest,
    command: MasterCommand,
    quiet: bool,
) -> (String, i32) {
    let chain = match connector.chain_for(request) {
        Ok(chain) => chain,
        Err(e) => return (format!("{e}\n"), 255),
    };
    if connector.connected(&chain).is_none() {
        // OpenSSH names its ControlPath; ours is the chain.
        return (
            format!("Control socket connect({chain}): No such file or directory\n"),
            255,
        );
    }
    match command {
        MasterCommand::Check => (
            format!("Master running (pid={})\r\n", std::process::id()),
            0,
        ),
        MasterCommand::Exit | MasterCommand::Stop => {
            end_chain(connector, &chain).await;
            let words = match command {
                MasterCommand::Stop => "Stop listening request sent.\r\n",
                _ => "Exit request sent.\r\n",
            };
            (if quiet { String::new() } else { words.into() }, 0)
        }
    }
}

/// End `chain`'s context and every context reached through it, the
/// longest chains first.
async fn end_chain(connector: &Connector, chain: &Chain) {
    let name = chain.to_string();
    let mut doomed: Vec<_> = connector
        .stats
        .snapshot()
        .into_iter()
        .filter(|c| {
            c.chain == name
                || c.chain
                    .strip_prefix(&name)
                    .is_some_and(|rest| rest.starts_with(','))
        })
        .collect();
    doomed.sort_by_key(|c| std::cmp::Reverse(c.chain.matches(',').count()));
    for context in doomed {
        info!("{}: ended by ssh -O", context.chain);
        lifetime::end(connector, context.context).await;
    }
}
