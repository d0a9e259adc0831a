//! Our own messages on stderr.

/// `eprintln!` for a stderr that may be gone: the client that gave it to us
/// may have exited (rsync kills ssh once it has its status), and
/// `eprintln!` panics on a write error, which in a release build aborts.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use say;
