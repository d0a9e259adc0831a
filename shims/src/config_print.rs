//! `ssh -G`: print the configuration and exit (git probes it).

use crate::argv::SshInvocation;

/// What git's probe needs (user, hostname, port) and the -o options.
pub fn print(inv: &SshInvocation) {
    let user = inv
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "root".into());
    let mut out = format!(
        "user {user}\nhostname {}\nport {}\n",
        inv.host,
        inv.port.unwrap_or(22)
    );
    for (k, v) in &inv.options {
        let k = k.to_ascii_lowercase();
        if !matches!(k.as_str(), "user" | "port" | "hostname") {
            out.push_str(&format!("{k} {v}\n"));
        }
    }
    print!("{out}");
}
