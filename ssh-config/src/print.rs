//! `ssh -G`: the configuration a destination resolves to, one `keyword
//! value` line each, lower-case, in the shape OpenSSH prints it (tools
//! such as git probe it).

use std::fmt::Write;

use super::host_config::{HostConfig, StrictHostKeyChecking};

/// What OpenSSH 9.2 prints for keywords nobody set, for those we do not
/// resolve ourselves.
const DEFAULTS: &[(&str, &str)] = &[
    ("addressfamily", "any"),
    ("canonicalizefallbacklocal", "yes"),
    ("canonicalizehostname", "false"),
    ("checkhostip", "no"),
    ("compression", "no"),
    ("controlmaster", "false"),
    ("enablesshkeysign", "no"),
    ("clearallforwardings", "no"),
    ("exitonforwardfailure", "no"),
    ("fingerprinthash", "SHA256"),
    ("forwardx11", "no"),
    ("forwardx11trusted", "yes"),
    ("gatewayports", "no"),
    ("hostbasedauthentication", "no"),
    ("kbdinteractiveauthentication", "yes"),
    ("nohostauthenticationforlocalhost", "no"),
    ("passwordauthentication", "yes"),
    ("permitlocalcommand", "no"),
    ("proxyusefdpass", "no"),
    ("pubkeyauthentication", "true"),
    ("sessiontype", "default"),
    ("stdinnull", "no"),
    ("forkafterauthentication", "no"),
    ("streamlocalbindunlink", "no"),
    ("tcpkeepalive", "yes"),
    ("tunnel", "false"),
    ("verifyhostkeydns", "false"),
    ("visualhostkey", "no"),
    ("updatehostkeys", "true"),
    ("enableescapecommandline", "no"),
    ("canonicalizemaxdots", "1"),
    ("connectionattempts", "1"),
    ("forwardx11timeout", "1200"),
    ("requiredrsasize", "1024"),
    ("loglevel", "INFO"),
    ("logverbose", "none"),
    ("permitremoteopen", "any"),
    ("addkeystoagent", "false"),
    ("forwardagent", "no"),
    ("tunneldevice", "any:any"),
    ("controlpersist", "no"),
    ("escapechar", "~"),
    ("ipqos", "lowdelay throughput"),
    ("rekeylimit", "0 0"),
    ("streamlocalbindmask", "0177"),
    ("syslogfacility", "USER"),
];

/// Keywords whose every value gets a line of its own.
const ONE_LINE_EACH: &[&str] = &[
    "identityfile",
    "certificatefile",
    "sendenv",
    "setenv",
    "localforward",
    "remoteforward",
    "dynamicforward",
];

/// The `ssh -G` text for `cfg` (whose user, if unset, is `local_user`).
pub fn config(cfg: &HostConfig, local_user: &str) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key} {value}");
    };
    line("host", &cfg.alias);
    line("user", cfg.user.as_deref().unwrap_or(local_user));
    line("hostname", &cfg.hostname);
    line("port", &cfg.port.to_string());
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    line("batchmode", yes_no(cfg.password_prompts == 0));
    line("hashknownhosts", yes_no(cfg.hash_known_hosts));
    line("identitiesonly", yes_no(cfg.identities_only));
    line(
        "stricthostkeychecking",
        match cfg.strict_host_key_checking {
            StrictHostKeyChecking::Yes => "true",
            StrictHostKeyChecking::AcceptNew => "accept-new",
            StrictHostKeyChecking::No => "false",
        },
    );
    line("numberofpasswordprompts", &cfg.password_prompts.to_string());
    line(
        "serveralivecountmax",
        &cfg.server_alive_count_max.unwrap_or(3).to_string(),
    );
    line(
        "serveraliveinterval",
        &cfg.server_alive_interval
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    line(
        "connecttimeout",
        &cfg.connect_timeout
            .map_or("none".to_string(), |d| d.as_secs().to_string()),
    );
    line("requesttty", cfg.request_tty.as_deref().unwrap_or("auto"));
    for file in cfg.identity_files_or_default() {
        line("identityfile", &file.display().to_string());
    }
    for file in &cfg.certificate_files {
        line("certificatefile", &file.display().to_string());
    }
    let paths = |files: &[std::path::PathBuf]| {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    line(
        "globalknownhostsfile",
        &paths(&cfg.global_known_hosts_files),
    );
    line("userknownhostsfile", &paths(&cfg.user_known_hosts_files));
    for pattern in &cfg.send_env {
        line("sendenv", pattern);
    }
    for (name, value) in &cfg.set_env {
        line("setenv", &format!("{name}={value}"));
    }
    if let Some(jump) = &cfg.proxy_jump {
        line("proxyjump", jump);
    }
    if let Some(command) = &cfg.proxy_command {
        line("proxycommand", command);
    }
    if let Some(command) = &cfg.remote_command {
        line("remotecommand", command);
    }
    const RESOLVED: &[&str] = &[
        "host",
        "user",
        "hostname",
        "port",
        "batchmode",
        "hashknownhosts",
        "identitiesonly",
        "stricthostkeychecking",
        "numberofpasswordprompts",
        "serveralivecountmax",
        "serveraliveinterval",
        "connecttimeout",
        "requesttty",
        "identityfile",
        "certificatefile",
        "globalknownhostsfile",
        "userknownhostsfile",
        "sendenv",
        "setenv",
        "proxyjump",
        "proxycommand",
        "remotecommand",
    ];
    // What the files set that we do not resolve, then OpenSSH's defaults.
    for (key, values) in &cfg.obtained {
        if RESOLVED.contains(&key.as_str()) {
            continue;
        }
        if ONE_LINE_EACH.contains(&key.as_str()) {
            for value in values {
                line(key, value);
            }
        } else if let Some(value) = values.first() {
            line(key, value);
        }
    }
    for (key, value) in DEFAULTS {
        if !cfg.obtained.iter().any(|(k, _)| k == key) {
            line(key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::SshConfig;

    #[test]
    fn prints_what_the_destination_resolves_to() {
        let cfg = SshConfig::parse(
            "Host web\n  HostName web.example.org\n  Port 2222\n  SendEnv LANG LC_*\n  Compression yes\n  ForwardX11Timeout 30\n",
        )
        .unwrap();
        let host = cfg.resolve("web", Some("deploy"), None).unwrap();
        let text = super::config(&host, "me");
        for line in [
            "host web\n",
            "user deploy\n",
            "hostname web.example.org\n",
            "port 2222\n",
            "sendenv LANG\n",
            "sendenv LC_*\n",
            "compression yes\n",
            "forwardx11timeout 30\n",
            "gatewayports no\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(text.starts_with("host web\nuser deploy\nhostname web.example.org\nport 2222\n"));
        assert_eq!(text.matches("compression ").count(), 1);
    }
}
