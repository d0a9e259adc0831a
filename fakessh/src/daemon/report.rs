//! What a daemon says about itself (`status`, and what `exec` needs to
//! point a command at it), as JSON on the wire and as a table for people.

use serde::{Deserialize, Serialize};

use crate::host::stats::ContextStatus;

/// A daemon's answer to a control request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub socket: String,
    /// The shims' directory, for PATH.
    pub bin: String,
    /// The real scp and sftp (resolved before PATH had the shims).
    pub real_scp: String,
    pub real_sftp: String,
    /// The ssh config the shims read for SendEnv, SetEnv and `ssh -G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<String>,
    pub uptime_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub contexts: Vec<ContextStatus>,
}

/// `1h 2m`, `5m 3s`, `12s`.
pub fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

/// `512 B`, `1.2 KiB`, `3.4 MiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", units[unit]),
    }
}

impl DaemonStatus {
    /// The table `status` prints for people.
    pub fn for_people(&self) -> String {
        let mut out = format!(
            "mitogen-fakessh daemon, pid {}, up {}, socket {}, idle timeout {}\n",
            self.pid,
            duration(self.uptime_seconds),
            self.socket,
            duration(self.idle_timeout_seconds)
        );
        if self.contexts.is_empty() {
            out.push_str("no contexts (each connects on its first session)\n");
            return out;
        }
        out.push_str(&format!(
            "{:<8} {:<32} {:>8} {:>5} {:>7} {:>10} {:>10} {:>8}\n",
            "CONTEXT", "CHAIN", "UPTIME", "OPEN", "TOTAL", "IN", "OUT", "IDLE"
        ));
        for c in &self.contexts {
            out.push_str(&format!(
                "{:<8} {:<32} {:>8} {:>5} {:>7} {:>10} {:>10} {:>8}\n",
                c.context,
                c.chain,
                duration(c.uptime_seconds),
                c.sessions_open,
                c.sessions_total,
                bytes(c.bytes_in),
                bytes(c.bytes_out),
                duration(c.idle_seconds)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_it() {
        assert_eq!(duration(3), "3s");
        assert_eq!(duration(303), "5m 3s");
        assert_eq!(duration(3720), "1h 2m");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        let status = DaemonStatus {
            pid: 7,
            socket: "/run/s".into(),
            contexts: vec![ContextStatus {
                context: 1,
                chain: "ssh:web1,sudo:root".into(),
                uptime_seconds: 60,
                sessions_open: 1,
                sessions_total: 3,
                bytes_in: 10,
                bytes_out: 1 << 20,
                idle_seconds: 0,
            }],
            ..Default::default()
        };
        let text = status.for_people();
        assert!(text.contains("ssh:web1,sudo:root"), "{text}");
        assert!(text.contains("1.0 MiB"), "{text}");
    }
}
