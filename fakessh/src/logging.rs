//! Diagnostics on stderr through `tracing`, for the host and the agents.
//!
//! Every line names its origin, `mitogen-fakessh: ` for the host and
//! `mitogen-fakessh[CHAIN]: ` for an agent, so output from several contexts
//! sharing one terminal can be told apart.

use std::fmt;
use std::io::Write;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Environment variable with a `RUST_LOG`-style filter that overrides -v/-q.
pub const LOG_ENV: &str = "MITOGEN_FAKESSH_LOG";

struct Line {
    prefix: String,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(w, "{}: {level}: ", self.prefix)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `MITOGEN_FAKESSH_LOG` if set and valid, else `default`; the host
/// (`report`) says once if the variable is not a valid filter.
#[cfg(feature = "host")]
fn filter(default: &str, report: bool) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    match std::env::var(LOG_ENV) {
        Ok(text) => EnvFilter::try_new(&text).unwrap_or_else(|e| {
            // The host says so once; its local agents inherit the variable.
            if report {
                stderr_line(&format!(
                    "mitogen-fakessh: warning: {LOG_ENV}={text:?} is not a valid filter ({e}); using the -v/-q level"
                ));
            }
            EnvFilter::new(default)
        }),
        Err(_) => EnvFilter::new(default),
    }
}

/// An agent-only build (for remote hosts, which never see the variable):
/// the level alone.
#[cfg(not(feature = "host"))]
fn filter(default: &str, _report: bool) -> tracing::level_filters::LevelFilter {
    default
        .parse()
        .unwrap_or(tracing::level_filters::LevelFilter::WARN)
}

/// Install the stderr subscriber. `level`: 0 errors .. 4 trace. `context` is
/// `None` for the host, the chain name for an agent.
pub fn init(level: u8, context: Option<&str>) {
    let default = match level {
        0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = filter(default, context.is_none());
    let prefix = match context {
        None => "mitogen-fakessh".to_string(),
        Some(name) => format!("mitogen-fakessh[{name}]"),
    };
    let builder = tracing_subscriber::fmt();
    #[cfg(feature = "host")]
    let builder = builder.with_env_filter(filter);
    #[cfg(not(feature = "host"))]
    let builder = builder.with_max_level(filter);
    let _ = builder
        .with_writer(|| QuietStderr)
        .event_format(Line { prefix })
        .try_init();
}

/// Stderr that never fails. Once whoever reads our stderr is gone (sshd of
/// an ssh hop that closed, a `| head` that had enough), a write error must
/// not escalate: `eprintln!` panics on one, and tracing's own fallback for
/// it is an `eprintln!`. An agent that panicked in the middle of removing
/// its parent stream never noticed its parent was gone and lived on, with
/// the hops it had started.
struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One line on stderr, ignoring a stderr that is gone; for the messages
/// that do not go through `tracing` (relayed agent lines, last words).
pub fn stderr_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}
