//! The shell code `start` prints for `eval`, as ssh-agent does: sh, csh
//! or fish, chosen by `-s`, `-c`, `--fish`, else by `$SHELL`.

use super::report::DaemonStatus;

/// Which shell reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Sh,
    Csh,
    Fish,
}

impl Shell {
    /// From the flags, else from `$SHELL` (a csh or tcsh, fish; else sh).
    pub fn choose(sh: bool, csh: bool, fish: bool) -> Shell {
        match (sh, csh, fish) {
            (true, _, _) => Shell::Sh,
            (_, true, _) => Shell::Csh,
            (_, _, true) => Shell::Fish,
            _ => {
                let shell = std::env::var("SHELL").unwrap_or_default();
                match shell.rsplit('/').next().unwrap_or("") {
                    name if name.ends_with("csh") => Shell::Csh,
                    "fish" => Shell::Fish,
                    _ => Shell::Sh,
                }
            }
        }
    }
}

/// A value the shells can all take in single quotes.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} holds a quote or a newline and cannot go into shell code")]
pub struct Unquotable(String);

fn quoted(value: &str) -> Result<String, Unquotable> {
    match value.contains(['\'', '\n', '!']) {
        true => Err(Unquotable(value.to_string())),
        false => Ok(format!("'{value}'")),
    }
}

/// The variables `start`'s code sets (besides PATH), which `stop`'s unsets.
const VARIABLES: [&str; 6] = [
    shims::env::CONTROL_PATH,
    shims::env::SHIM_SSH,
    shims::env::REAL_SCP,
    shims::env::REAL_SFTP,
    "MITOGEN_FAKESSH_PID",
    shims::env::SSH_CONFIG,
];

/// The code that undoes [`code`]'s, as `ssh-agent -k` prints: unset its
/// variables, and set PATH to `path` (the shell's, which `stop` inherited)
/// without the shims' directories `bins`.
pub fn undo(shell: Shell, path: &str, bins: &[String]) -> Result<String, Unquotable> {
    let mut out = String::new();
    for name in VARIABLES {
        out.push_str(&match shell {
            Shell::Sh => format!("unset {name};\n"),
            Shell::Csh => format!("unsetenv {name};\n"),
            Shell::Fish => format!("set -e {name};\n"),
        });
    }
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let kept: Vec<&str> = path
        .split(':')
        .filter(|dir| !bins.iter().any(|bin| same(dir, bin)))
        .collect();
    out.push_str(&match shell {
        Shell::Sh => format!("PATH={}; export PATH;\n", quoted(&kept.join(":"))?),
        Shell::Csh => format!("setenv PATH {};\n", quoted(&kept.join(":"))?),
        Shell::Fish => {
            let dirs: Result<Vec<String>, Unquotable> = kept.iter().map(|d| quoted(d)).collect();
            format!("set -gx PATH {};\n", dirs?.join(" "))
        }
    });
    Ok(out)
}

/// The code that points a shell at the daemon: its socket, the shims
/// first on PATH, the real scp and sftp, the pid.
pub fn code(status: &DaemonStatus, shell: Shell) -> Result<String, Unquotable> {
    let mut vars = vec![
        (shims::env::CONTROL_PATH, status.socket.clone()),
        (
            shims::env::SHIM_SSH,
            format!("{}/ssh", status.bin.trim_end_matches('/')),
        ),
        (shims::env::REAL_SCP, status.real_scp.clone()),
        (shims::env::REAL_SFTP, status.real_sftp.clone()),
        ("MITOGEN_FAKESSH_PID", status.pid.to_string()),
    ];
    if let Some(config) = &status.ssh_config {
        vars.push((shims::env::SSH_CONFIG, config.clone()));
    }
    let mut out = String::new();
    for (name, value) in vars {
        let value = quoted(&value)?;
        out.push_str(&match shell {
            Shell::Sh => format!("{name}={value}; export {name};\n"),
            Shell::Csh => format!("setenv {name} {value};\n"),
            Shell::Fish => format!("set -gx {name} {value};\n"),
        });
    }
    let bin = quoted(&status.bin)?;
    out.push_str(&match shell {
        Shell::Sh => format!("PATH={bin}:\"$PATH\"; export PATH;\n"),
        Shell::Csh => format!("setenv PATH {bin}:\"$PATH\";\n"),
        Shell::Fish => format!("set -gx PATH {bin} $PATH;\n"),
    });
    out.push_str(&format!(
        "echo mitogen-fakessh daemon pid {};\n",
        status.pid
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> DaemonStatus {
        DaemonStatus {
            pid: 42,
            socket: "/run/user/1000/mitogen-fakessh/daemon.sock".into(),
            bin: "/run/user/1000/mitogen-fakessh/daemon.sock.bin".into(),
            real_scp: "/usr/bin/scp".into(),
            real_sftp: "/usr/bin/sftp".into(),
            ..Default::default()
        }
    }

    /// Run `program -c CODE; echo ...` and check what the shell saw.
    fn shell_reads(shell: Shell, program: &str) {
        let code = code(&status(), shell).unwrap();
        let out = std::process::Command::new(program)
            .arg("-c")
            .arg(format!("{code} echo $MITOGEN_FAKESSH_SOCK; echo $PATH"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (./tests/run installs it)"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("mitogen-fakessh daemon pid 42\n/run/user/1000/mitogen-fakessh/daemon.sock\n/run/user/1000/mitogen-fakessh/daemon.sock.bin"),
            "{program}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn sh_reads_its_code() {
        shell_reads(Shell::Sh, "sh");
        let mut bad = status();
        bad.socket = "/tmp/it's".into();
        assert!(code(&bad, Shell::Sh).is_err());
    }

    #[test]
    fn undo_takes_only_the_shims_off_path() {
        let bins = ["/run/d.sock.bin".to_string()];
        let code = undo(
            Shell::Sh,
            "/run/d.sock.bin/:/usr/bin:/run/d.sock.bin2",
            &bins,
        )
        .unwrap();
        assert!(code.contains("unset MITOGEN_FAKESSH_SOCK;\n"), "{code}");
        assert!(
            code.ends_with("PATH='/usr/bin:/run/d.sock.bin2'; export PATH;\n"),
            "{code}"
        );
        let fish = undo(Shell::Fish, "/run/d.sock.bin:/usr/bin:/bin", &bins).unwrap();
        assert!(
            fish.ends_with("set -gx PATH '/usr/bin' '/bin';\n"),
            "{fish}"
        );
        let csh = undo(Shell::Csh, "/usr/bin", &bins).unwrap();
        assert!(csh.starts_with("unsetenv MITOGEN_FAKESSH_SOCK;\n"), "{csh}");
        assert!(undo(Shell::Sh, "/it's", &bins).is_err());
    }

    #[test]
    #[ignore = "needs tcsh and fish (run ./tests/run)"]
    fn csh_and_fish_read_theirs() {
        shell_reads(Shell::Csh, "tcsh");
        shell_reads(Shell::Fish, "fish");
    }
}
