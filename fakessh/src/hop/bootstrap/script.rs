//! The bootstrap script: one POSIX `sh` script, run on the remote as the
//! account the agent is to run as.
//!
//! It is a single line free of quotes, `!` and backslashes inside
//! `exec /bin/sh -c '...'`, so it reaches `/bin/sh` unchanged through every
//! common login shell (sh, bash, dash, zsh, ksh, fish, tcsh/csh, busybox
//! ash). It is written in `bootstrap.sh`, beside this file, a template
//! the host fills in and joins into that line (`.ci/run` checks it with
//! shellcheck). It:
//!
//! 1. asks `uname -sm` which platform this is, and knows the checksum of
//!    the agent for each platform the host can upload;
//! 2. looks for that agent in the cache places, in order: the cache
//!    (`${XDG_CACHE_HOME:-$HOME/.cache}/mitogen-fakessh`),
//!    `$XDG_RUNTIME_DIR/mitogen-fakessh`, then `mitogen-fakessh-UID` in
//!    `/dev/shm`, `/tmp` and `/var/tmp` (or only `--agent-dir`). A copy
//!    whose checksum matches, in a place where it was seen to execute, is
//!    exec'd at once: a warm start costs no extra round trip;
//! 3. otherwise asks for the agent (gzip'd when the remote has gzip),
//!    receives it, decompressing and checksumming as it arrives (asking
//!    once more if the checksum does not match), stores it 0700 under a
//!    temporary name, renames it into place and checks it executes there
//!    (`__probe`): a place that is noexec, missing, not writable or not
//!    safe is skipped, and the error names every place tried and why.
//!
//! # Who can touch what is run
//!
//! A place is used, in the lookup as in the store, only if it is safe
//! ([`place`](script) in the script): not a symbolic link, a directory
//! owned by the account the script runs as (`id -u`: after sudo, su or
//! doas, the target account, so a privileged hop only ever uses places of
//! its target account), not writable by group or others, and every parent
//! of its physical path (`cd -P`, `pwd -P`) owned by root or the account
//! and either not writable by group or others, or root's and sticky
//! (`/tmp`, `/dev/shm`). From then on only the physical path is used. So
//! nobody but the account and root can add, rename or remove an entry in
//! it: a place another user created first (`/dev/shm/mitogen-fakessh-0`
//! made by an unprivileged user) is skipped, never used.
//!
//! What is hashed is what runs: the agent file is opened once, on fd 3
//! (`exec 3< FILE`); the open file must be a regular file owned by the
//! account and not writable by group or others (`ls -lnL` of the open
//! descriptor); the checksum is computed by reading that descriptor
//! (`sha256sum <&3`); and the agent is started through the same descriptor
//! (`exec /proc/self/fd/3`, or `/dev/fd/3`), which the kernel resolves to
//! the open file itself, not to a name in a directory (the probe runs it
//! the same way). Renaming, deleting
//! or replacing the directory entry after the open changes nothing of
//! what fd 3 refers to; changing the bytes of that file needs write
//! permission on it, which only the account (and root) has, and a file
//! open for writing cannot be exec'd (`ETXTBSY`). Only a remote with
//! neither `/proc` nor `/dev/fd` (a bare chroot) has the agent exec'd by
//! its path, in the safe place, after hashing it through fd 3: there the
//! place's safety alone keeps others from swapping it.
//!
//! Nothing half-written ever takes the agent's name, and the temporary
//! files go when the script ends without exec'ing the agent (an error, a
//! signal, a closed connection). A failed upload pipeline (no working
//! `head`, `gzip`, `tee` or `sha256sum`) is an error, never a second
//! request for the agent with the first one still unread.

use std::sync::Arc;

use crate::hop::agents::Image;

/// An `--agent-dir` the script cannot carry through every login shell.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "an agent directory with a quote, $, `, \\, ! or a control character cannot pass through every login shell"
)]
pub struct AgentDirError(pub String);

/// Check an `--agent-dir` (for clap, and again where the script is made).
/// Whether the directory is safe to use is decided on the remote, by the
/// script, with the same rules as for the default places.
pub fn agent_dir(dir: &str) -> Result<String, AgentDirError> {
    let bad = |c: char| matches!(c, '"' | '\'' | '$' | '`' | '\\' | '!') || c.is_control();
    match dir.is_empty() || dir.contains(bad) {
        true => Err(AgentDirError(dir.to_string())),
        false => Ok(dir.to_string()),
    }
}

/// What the script needs to know, besides the agents.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// `--agent-dir`: the only place to keep the agent.
    pub agent_dir: Option<String>,
    /// After a privilege change the inherited `HOME` and `XDG_*` may still
    /// be the previous user's: take the home from the passwd database.
    pub privileged: bool,
    /// Ask for the agent gzip'd when the remote has gzip (over a network;
    /// not between two processes on one machine).
    pub compress: bool,
}

/// The script, as a template: `bootstrap.sh` says at its head what the
/// host fills in, and the rules that let it travel as one line.
const TEMPLATE: &str = include_str!("bootstrap.sh");

/// The places to try without `--agent-dir`, as shell words.
const DEFAULT_PLACES: &str = concat!(
    r#""${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/mitogen-fakessh" "#,
    r#"${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/mitogen-fakessh"} "#,
    r#""/dev/shm/mitogen-fakessh-$i" "/tmp/mitogen-fakessh-$i" "/var/tmp/mitogen-fakessh-$i""#
);

/// Whether the template's block `name` (`# @begin name` .. `# @end name`)
/// is part of this script.
fn keeps_block(name: &str, placement: &Placement) -> bool {
    match name {
        "privileged" => placement.privileged,
        "compress" => placement.compress,
        "checks" => true,
        _ => unreachable!("bootstrap.sh has a block the host does not know: {name}"),
    }
}

/// `line` with each `@NAME@` replaced by its value in `values`, in one
/// pass: a value is never read again for names.
fn fill(line: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name = after.find('@').map(|end| &after[..end]);
        match name.and_then(|n| values.iter().find(|(k, _)| *k == n)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The template's lines without comments, blank lines and indentation,
/// and without the blocks `keep` refuses.
fn template_lines(keep: impl Fn(&str) -> bool) -> impl Iterator<Item = &'static str> {
    let mut dropping: Option<&str> = None;
    TEMPLATE.lines().map(str::trim).filter(move |line| {
        if let Some(name) = line.strip_prefix("# @begin ") {
            if dropping.is_none() && !keep(name) {
                dropping = Some(name);
            }
            return false;
        }
        if let Some(name) = line.strip_prefix("# @end ") {
            if dropping == Some(name) {
                dropping = None;
            }
            return false;
        }
        dropping.is_none() && !line.is_empty() && !line.starts_with('#')
    })
}

/// The script as `sh` reads it: one command a line, so it can be read.
fn script(images: &[Arc<Image>], placement: &Placement) -> String {
    let places = match &placement.agent_dir {
        Some(dir) => format!("\"{dir}\""),
        None => DEFAULT_PLACES.to_string(),
    };
    let values = [
        ("PLACES", places.as_str()),
        ("AGENT_ARG", crate::roles::AGENT_ARG),
        ("PROBE_ARG", crate::roles::PROBE_ARG),
    ];
    let mut out = String::with_capacity(TEMPLATE.len() + places.len() * 2);
    for line in template_lines(|name| keeps_block(name, placement)) {
        if line.contains("@PLATFORM@") {
            for image in images {
                let size = image.size.to_string();
                let arm = [
                    ("PLATFORM", image.platform.as_str()),
                    ("SHA256", image.sha256.as_str()),
                    ("SIZE", size.as_str()),
                ];
                out.push_str(&fill(line, &arm));
                out.push('\n');
            }
        } else {
            out.push_str(&fill(line, &values));
            out.push('\n');
        }
    }
    out
}

/// Join the script's lines into one: `;` between commands, a blank after
/// a word that continues the command (`then`, `do`, `else`, `in`, `;;`,
/// `{`, `||`, `&&`).
fn one_line(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            let continues = ["then", "do", "else", "in", ";;", "{", "||", "&&"]
                .iter()
                .any(|w| out.ends_with(w));
            out.push_str(if continues { " " } else { " ; " });
        }
        out.push_str(line);
    }
    out
}

/// The remote command for an ssh channel (or a privilege hop's `sh -c`):
/// the script on one line, run by `/bin/sh` whatever the login shell is.
pub fn command(images: &[Arc<Image>], placement: &Placement) -> String {
    let line = one_line(&script(images, placement));
    debug_assert!(!line.contains(['\'', '!', '\\', '\n']), "{line}");
    format!("exec /bin/sh -c '{line}'")
}

/// The script alone (for `sh -c` after sudo, su or doas).
pub fn sh_script(images: &[Arc<Image>], placement: &Placement) -> String {
    one_line(&script(images, placement))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    /// The functions the lookup and the store share (the block `checks`),
    /// alone.
    fn checks() -> String {
        let mut inside = false;
        let mut out = String::new();
        for line in TEMPLATE.lines().map(str::trim) {
            match line {
                "# @begin checks" => inside = true,
                "# @end checks" => inside = false,
                _ if inside && !line.is_empty() && !line.starts_with('#') => {
                    out.push_str(line);
                    out.push('\n');
                }
                _ => {}
            }
        }
        assert!(!out.is_empty(), "bootstrap.sh has no block `checks`");
        out
    }

    /// The shells a remote `/bin/sh` may be, that this machine has.
    fn shells() -> Vec<Vec<&'static str>> {
        let mut shells = vec![vec!["sh"]];
        for (probe, shell) in [
            ("dash", vec!["dash"]),
            ("bash", vec!["bash", "--posix"]),
            ("busybox", vec!["busybox", "sh"]),
        ] {
            if Command::new(probe).arg("-c").arg("true").output().is_ok() {
                shells.push(shell);
            }
        }
        shells
    }

    /// `place DIR` in each shell: its verdict (`ok PHYSICAL` or `no WHY`).
    fn place(dir: &std::path::Path) -> Vec<String> {
        let script = format!(
            "i=\"$(id -u)\" ; {} ; if place \"$1\" ; then echo \"ok $p\" ; else echo \"no $r\" ; fi",
            one_line(&checks())
        );
        shells()
            .into_iter()
            .map(|shell| {
                let out = Command::new(shell[0])
                    .args(&shell[1..])
                    .args(["-c", &script, "sh"])
                    .arg(dir)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect()
    }

    /// Every script the host can make: all of the template's names filled
    /// in, nothing that a login shell would read (the assertion in
    /// `command`), and no comment left on a line of code.
    #[test]
    fn every_script_fills_the_template_and_keeps_to_one_line() {
        let image = |platform: &str, size: u64| {
            Arc::new(Image {
                platform: platform.into(),
                path: "/nonexistent".into(),
                size,
                sha256: format!("{size:064x}"),
            })
        };
        let images = [image("Linux x86_64", 123), image("Linux aarch64", 4567)];
        for line in template_lines(|_| true) {
            assert!(!line.contains(" #"), "a comment after code: {line}");
        }
        for agent_dir in [None, Some("/srv/my agents@PLACES@".to_string())] {
            for privileged in [false, true] {
                for compress in [false, true] {
                    let placement = Placement {
                        agent_dir: agent_dir.clone(),
                        privileged,
                        compress,
                    };
                    let line = command(&images, &placement);
                    for name in ["PLATFORM", "SHA256", "SIZE", "AGENT_ARG", "PROBE_ARG"] {
                        assert!(!line.contains(&format!("@{name}@")), "{line}");
                    }
                    assert_eq!(
                        line.matches("@PLACES@").count(),
                        2 * usize::from(agent_dir.is_some())
                    );
                    assert_eq!(line.contains("getent passwd"), privileged);
                    assert_eq!(line.contains("z=gz"), compress);
                    assert!(line.contains(r#""Linux aarch64") s="#), "{line}");
                }
            }
        }
    }

    fn mkdir(path: &std::path::Path, mode: u32) {
        std::fs::create_dir(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn only_a_private_directory_under_safe_parents_is_a_place() {
        // In /tmp: root's and sticky.
        let tmp = tempfile::Builder::new()
            .prefix("mfs-place.")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let good = tmp.path().join("good");
        mkdir(&good, 0o700);
        let open = tmp.path().join("open");
        mkdir(&open, 0o777);
        let group = tmp.path().join("group");
        mkdir(&group, 0o770);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        let shared = tmp.path().join("shared");
        mkdir(&shared, 0o777);
        let below_shared = shared.join("mine");
        mkdir(&below_shared, 0o700);
        let sticky = tmp.path().join("sticky");
        mkdir(&sticky, 0o1777);
        let below_sticky = sticky.join("mine");
        mkdir(&below_sticky, 0o700);
        let physical = std::fs::canonicalize(&good).unwrap();
        let root = nix::unistd::Uid::current().is_root();
        for (dir, want) in [
            (&good, format!("ok {}", physical.display())),
            (&open, "no writable by group or others".into()),
            (&group, "no writable by group or others".into()),
            (&link, "no a symbolic link".into()),
            (&tmp.path().join("missing"), "no missing".into()),
            (
                &below_shared,
                format!("no {} is writable by others", shared.display()),
            ),
        ] {
            for verdict in place(dir) {
                assert_eq!(verdict, want, "{}", dir.display());
            }
        }
        // A sticky parent is safe only if it is root's (as /tmp is).
        let want = match root {
            true => "ok",
            false => "no",
        };
        for verdict in place(&below_sticky) {
            assert!(verdict.starts_with(want), "{verdict}");
        }
        // Another user's directory, however private.
        if root {
            let theirs = tmp.path().join("theirs");
            mkdir(&theirs, 0o700);
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            for verdict in place(&theirs) {
                assert_eq!(verdict, "no not owned by uid 0");
            }
        }
    }

    #[test]
    fn the_agent_runs_from_the_descriptor_that_was_hashed() {
        // The file is replaced between the hash and the exec (here by the
        // script's hashing function, which swaps it right after hashing):
        // what runs is still what was hashed.
        let dir = tempfile::Builder::new()
            .prefix("mfs-swap.")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let write = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            path
        };
        let agent = write("agent", "#!/bin/sh\necho genuine\n");
        write("evil", "#!/bin/sh\necho swapped\n");
        let real = ["/usr/bin/sha256sum", "/bin/sha256sum"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("sha256sum");
        let sum = Command::new(real).arg(&agent).output().unwrap();
        let s = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
        let script = format!(
            "sumin() {{ {real} ; mv -f {d}/evil {d}/agent ; }} ; i=\"$(id -u)\" ; s={s} ; {} ; opened \"$1\" || exit 9 ; \"$e\"",
            one_line(&checks()),
            d = dir.path().display()
        );
        for shell in shells() {
            write("agent", "#!/bin/sh\necho genuine\n");
            write("evil", "#!/bin/sh\necho swapped\n");
            let out = Command::new(shell[0])
                .args(&shell[1..])
                .args(["-c", &script, "sh"])
                .arg(&agent)
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "genuine\n",
                "{shell:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The swap did happen.
            assert_eq!(
                std::fs::read_to_string(&agent).unwrap(),
                "#!/bin/sh\necho swapped\n"
            );
        }
    }
}
