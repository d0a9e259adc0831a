//! Diagnostics on stderr through `tracing`, for the host and the agents.

use tracing_subscriber::EnvFilter;

/// Environment variable with a `RUST_LOG`-style filter that overrides -v/-q.
pub const LOG_ENV: &str = "MITOGEN_FAKESSH_LOG";

/// Install the stderr subscriber. `level`: 0 errors .. 4 trace. `who` prefixes
/// every line so agent output is told apart from the host's.
pub fn init(level: u8, who: &str) {
    let default = match level {
        0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = std::env::var(LOG_ENV)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(true)
        .fmt_fields(tracing_subscriber::fmt::format::DefaultFields::new())
        .event_format(
            tracing_subscriber::fmt::format()
                .without_time()
                .with_target(false)
                .compact(),
        )
        .try_init();
    tracing::debug!("{who}: logging at level {level}");
}
