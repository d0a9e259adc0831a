//! What the roles of this one executable share: the argument that selects
//! agent mode, the runtime of the host and the agents, and the shims'
//! rule for arguments. `main` picks the role.

use std::ffi::OsString;

/// Hidden first argument that selects agent mode.
pub const AGENT_ARG: &str = "__agent";

/// The tokio runtime of the host and of every agent: two workers, enough to
/// overlap the transport with the sessions on a small machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The shims carry arguments as UTF-8 text; refuse anything else loudly
/// rather than corrupt a path.
pub fn utf8_args(tool: &str, args: &[OsString]) -> Result<Vec<String>, i32> {
    args.iter()
        .map(|a| {
            a.clone().into_string().map_err(|bad| {
                crate::logging::stderr_line(&format!(
                    "{tool}: argument {:?} is not valid UTF-8; mitogen-fakessh cannot pass it on",
                    bad.to_string_lossy()
                ));
                255
            })
        })
        .collect()
}
