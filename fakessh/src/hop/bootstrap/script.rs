//! The bootstrap script: one POSIX `sh` script, run on the remote as the
//! account the agent is to run as.
//!
//! It is a single line free of quotes, `!` and backslashes inside
//! `exec /bin/sh -c '...'`, so it reaches `/bin/sh` unchanged through every
//! common login shell (sh, bash, dash, zsh, ksh, fish, tcsh/csh, busybox
//! ash). It:
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

/// The functions the lookup and the store share: `info PATH` (mode `m`
/// and owner `o` of what PATH resolves to), `wr MODE` (writable by group
/// or others), `place DIR` (safe, as the module says: `p` is its physical
/// path, or `r` says why not), `opened FILE` (fd 3 holds FILE, a file of
/// ours whose checksum is `$s`; `e` is the name that execs fd 3).
const CHECKS: &str = r#"wr() { case "$1" in ?????w*|????????w*) return 0 ;; esac ; return 1 ; }
info() { m="" ; o="" ; set -- $(ls -ldnL "$1" 2>/dev/null) ; m="$1" ; o="$3" ; }
place() {
p=""
test -L "$1" && { r="a symbolic link" ; return 1 ; }
[ -d "$1" ] || { r="missing" ; return 1 ; }
p="$(cd -P "$1" 2>/dev/null && pwd -P)" || { r="cannot enter it" ; return 1 ; }
info "$p"
case "$m" in d*) ;; *) r="not a directory" ; return 1 ;; esac
[ "$o" = "$i" ] || { r="not owned by uid $i" ; return 1 ; }
wr "$m" && { r="writable by group or others" ; return 1 ; }
q="$p"
while [ -n "$q" ] ; do
q="${q%/*}"
info "${q:-/}"
case "$o" in 0|"$i") ;; *) r="${q:-/} is owned by another user" ; return 1 ;; esac
wr "$m" || continue
[ "$o" = 0 ] && case "$m" in ?????????[tT]*) continue ;; esac
r="${q:-/} is writable by others" ; return 1
done
return 0
}
opened() {
[ -f "$1" ] && [ -r "$1" ] || return 1
exec 3< "$1"
e=/proc/self/fd/3
info "$e"
[ -n "$m" ] || { e=/dev/fd/3 ; info "$e" ; }
[ -n "$m" ] || { e="$1" ; info "$e" ; }
if [ "$o" = "$i" ] && case "$m" in -*) true ;; *) false ;; esac ; then
wr "$m" || { [ "$(sumin <&3 | cut -c1-64)" = "$s" ] && return 0 ; }
fi
exec 3<&-
return 1
}"#;

/// The script as `sh` reads it: one command a line, so it can be read.
/// The upload runs under umask 077; the agent it stores starts with the
/// session's own umask again (`um`: the one sshd gave, its inherited 022 on
/// Debian, or pam_umask's), so commands get the same umask whether this
/// run uploaded the agent or found it cached.
fn script(images: &[Arc<Image>], placement: &Placement) -> String {
    let prelude = if placement.privileged {
        r#"unset XDG_CACHE_HOME XDG_RUNTIME_DIR
i="$(id -u)"
h="$(getent passwd "$i" 2>/dev/null | cut -d: -f6)"
[ -n "$h" ] || while IFS=: read -r a b c e f g k ; do [ "$c" = "$i" ] && h="$g" && break ; done < /etc/passwd
HOME="$h"
export HOME"#
    } else {
        ""
    };
    let cases: String = images
        .iter()
        .map(|i| format!("\"{}\") s={} l={} ;;\n", i.platform, i.sha256, i.size))
        .collect();
    let places = match &placement.agent_dir {
        Some(dir) => format!("\"{dir}\""),
        None => concat!(
            r#""${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/mitogen-fakessh" "#,
            r#"${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/mitogen-fakessh"} "#,
            r#""/dev/shm/mitogen-fakessh-$i" "/tmp/mitogen-fakessh-$i" "/var/tmp/mitogen-fakessh-$i""#
        )
        .to_string(),
    };
    let compress = match placement.compress {
        // Tried, not looked up: busybox's `command -v` names applets
        // that are not there.
        true => r#"[ "$(printf x | gzip -c 2>/dev/null | gzip -dc 2>/dev/null)" = x ] && z=gz"#,
        false => "",
    };
    format!(
        r#"{prelude}
set -f
unset CDPATH
u="$(uname -sm 2>&1)" || {{ echo "MFS-ERROR uname -sm failed: $u" ; exit 1 ; }}
case "$u" in
{cases}*) echo "MFS-NOAGENT $u" ; exit 1 ;;
esac
sumin() {{ sha256sum 2>/dev/null || shasum -a 256 2>/dev/null || openssl dgst -sha256 -r 2>/dev/null ; }}
i="$(id -u)"
{CHECKS}
for d in {places} ; do
if place "$d" && [ -f "$p/.ok-$s" ] && opened "$p/$s" ; then
echo "MFS-CACHED $p"
echo MFS-EXEC
exec "$e" {agent}
fi
done
um="$(umask)"
umask 077
z=raw
{compress}
t=""
f=""
why=""
gone() {{ rm -f "$f" ; }}
trap gone EXIT HUP INT PIPE TERM
for d in {places} ; do
mkdir -p "$d" 2>/dev/null || test -L "$d" || {{ why="$why $d (cannot create it);" ; continue ; }}
place "$d" || {{ why="$why $d ($r);" ; continue ; }}
chmod 700 "$p"
f="$p/.$s.$$"
if opened "$p/$s" ; then
:
elif [ -z "$t" ] ; then
n=0
while : ; do
n=$((n+1))
echo "MFS-UPLOAD $z $u"
read len || exit 1
[ "$len" -gt 0 ] 2>/dev/null || {{ echo "MFS-ERROR the agent upload lost its framing (a failing head, gzip, tee or cat here?)" ; exit 1 ; }}
if [ "$z" = gz ] ; then
r="$(head -c "$len" | {{ gzip -dc 2>/dev/null ; cat >/dev/null ; }} | tee "$f" 2>/dev/null | sumin | cut -c1-64)"
else
r="$(head -c "$len" | {{ tee "$f" 2>/dev/null ; cat >/dev/null ; }} | sumin | cut -c1-64)"
fi
[ "$r" = "$s" ] && break
[ -s "$f" ] || {{ echo "MFS-ERROR nothing of the agent upload arrived (a failing head, gzip, tee or sha256sum here?)" ; exit 1 ; }}
rm -f "$f"
[ "$n" -lt 2 ] || {{ echo "MFS-ERROR the agent arrived corrupted twice (checksum mismatch)" ; exit 1 ; }}
done
w="$(wc -c < "$f" 2>/dev/null)"
[ "$((w+0))" = "$l" ] && chmod 700 "$f" && mv -f "$f" "$p/$s" || {{ rm -f "$f" ; why="$why $d (cannot store it);" ; continue ; }}
opened "$p/$s" || {{ why="$why $d (the agent stored there does not check out);" ; continue ; }}
else
cp "$t" "$f" && chmod 700 "$f" && mv -f "$f" "$p/$s" && opened "$p/$s" || {{ rm -f "$f" ; why="$why $d (cannot copy it there);" ; continue ; }}
fi
t="$p/$s"
if [ "$("$e" {probe} 2>/dev/null)" = MFS-OK ] ; then
: > "$p/.ok-$s"
echo "MFS-STORED $p"
echo MFS-EXEC
umask "$um"
exec "$e" {agent}
fi
exec 3<&-
why="$why $d (cannot execute there);"
done
echo "MFS-ERROR the agent cannot run in any place tried:$why set one with --agent-dir DIR"
exit 1"#,
        agent = crate::roles::AGENT_ARG,
        probe = crate::roles::PROBE_ARG,
    )
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
            one_line(CHECKS)
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
            one_line(CHECKS),
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
