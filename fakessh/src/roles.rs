//! What the roles of this one executable share: the argument that selects
//! agent mode, and the runtime of the host and the agents. `main` picks the
//! role.

/// Hidden first argument that selects agent mode.
pub const AGENT_ARG: &str = "__agent";

/// The tokio runtime of the host and of every agent: two workers, enough to
/// overlap the transport with the sessions on a small machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::sys::one_malloc_arena();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
