//! What the roles of this one executable share: the argument that selects
//! agent mode, and the runtime of the host and the agents. `main` picks the
//! role.

/// Hidden first argument that selects agent mode.
pub const AGENT_ARG: &str = "__agent";

/// Hidden first argument that only prints `MFS-OK` and exits: the
/// bootstrap's check that the agent executes where it was stored.
pub const PROBE_ARG: &str = "__probe";

/// A hash of the sources this executable was built from (`build.rs`).
pub const BUILD_ID: &str = env!("MFS_BUILD_ID");

/// [`BUILD_ID`] as it appears in the executable's bytes, where the host
/// looks for it in an agent before uploading that agent.
pub const BUILD_STAMP: &str = concat!("mitogen-fakessh-build-id:", env!("MFS_BUILD_ID"), ";");

/// Kept in the executable whatever the optimiser sees.
#[used]
static KEEP_BUILD_STAMP: &str = BUILD_STAMP;

/// The tokio runtime of the host and of every agent: two workers, enough to
/// overlap the transport with the sessions on a small machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::sys::one_malloc_arena();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
