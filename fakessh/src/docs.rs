//! Generated documentation: the man page and shell completions, both from
//! the clap definition in [`crate::cli`], so flags are documented once.

use clap::CommandFactory;

use crate::cli::Cli;

/// Sections clap does not know about, in roff.
const EXTRA_SECTIONS: &str = r#".SH CHAINS
.nf
CHAIN := HOP[,HOP]...
HOP   := local | ssh:[USER@]HOST[:PORT] | sudo[:USER] | su[:USER] | doas[:USER]
.fi
.PP
Each hop is started from where the previous one stands, so
\fBssh:bastion,ssh:target,sudo:root\fR reaches a target the local machine
cannot reach. USER defaults to root for sudo, su and doas. IPv6 addresses
go in brackets: \fBssh:deploy@[::1]:2222\fR.
.PP
A chain given to \fB\-\-host\fR or \fB\-\-to\fR (or in the config
file) may be a template: \fB%h\fR is the hostname as the client wrote it
(an IPv6 address goes in brackets), \fB%r\fR the client's user (from
\fB\-l\fR or \fBuser@\fR, else the ssh config's User for the host, else
the local user), \fB%p\fR the client's port (else the ssh config's, else
22), \fB%%\fR a percent sign; any other token is an error at start. Each
expanded chain is one context; identical expansions share it. A name that
would change the chain's structure (a comma, @ or bracket) fails only its
own sessions.
.PP
\fB\-\-host\fR patterns are ssh_config's: \fB*\fR, \fB?\fR,
\fB!\fRnegation and comma lists, without regard to case. Rules are tried
in order, the first match wins: the command line's \fB\-\-host\fR flags,
then its \fB\-\-to\fR, then the config file's \fB[[host]]\fR entries,
then its \fBto\fR. \fB\-\-explain HOST\fR prints the chain HOST gets and
the rule that gave it.
.PP
Without \fB\-\-to\fR or \fB\-\-host\fR, hostname H is reached as
\fBssh:[USER@]H[:PORT]\fR, taken from the shim's own argv (\fB\-l\fR,
\fB\-p\fR, \fBuser@\fR), connected on first use and reused. That first
use's \fB\-i\fR, \fB\-J\fR and \fB\-o\fR options configure the
connection ahead of the ssh config, and its \fB\-F\fR file replaces that
config, as on ssh's command line (so \fBrsync \-e "ssh \-i KEY"\fR works);
later sessions reuse the connection as it is.
.SH EXAMPLES
.TP
\fBmitogen\-fakessh \-\-to local \-\- rsync \-a src/ anyhost:/tmp/dst/\fR
Every ssh that rsync starts runs in a local agent; no sshd is needed.
.TP
\fBmitogen\-fakessh \-\-to ssh:deploy@web1,sudo:root \-\- rsync \-a build/ web1:/srv/app/\fR
Files land as root, although sudo on web1 demands a tty (requiretty).
.TP
\fBmitogen\-fakessh \-\-to ssh:deploy@web1,sudo:root \-\- scp \-r conf web1:/etc/app/\fR
scp and sftp work unmodified, in SFTP mode and with \fB\-O\fR.
.TP
\fBmitogen\-fakessh \-\-host web=ssh:bastion,ssh:web1 \-\-host db=ssh:db1 \-\- make \-j8 deploy\fR
A Makefile whose recipes call ssh, scp and rsync: each hostname through its
own chain, each chain connected once.
.TP
\fBmitogen\-fakessh \-\-to ssh:git@forge \-\- git clone forge:/srv/repo.git\fR
git over ssh, protocol v2 included.
.SH AGENTS
The agent each ssh hop starts on its remote host is picked by that host's
\fBuname \-sm\fR: a static executable built by \fB./build\-agents
MACHINE\fR (x86_64, aarch64, armv7l, i686, riscv64), found in
\fB\-\-agent PLATFORM=PATH\fR, \fB$MITOGEN_FAKESSH_AGENTS\fR, the
\fBagents\fR directory of a build tree, \fBlib/mitogen\-fakessh/agents\fR
beside an installed executable or \fB~/.local/share/mitogen\-fakessh/agents\fR
(each holding \fBlinux\-MACHINE/mitogen\-fakessh\fR); else this
executable, for its own platform. An agent built from other sources is not
uploaded; nor is one another local user could replace: it and every
directory above it must belong to root or to you and be writable by nobody
else (a sticky directory of root's excepted). \fB./install\fR in the
source tree puts this executable, every agent built, this page and the
shell completions under \fBPREFIX\fR (\fB/usr/local\fR; \fBDESTDIR\fR
stages it). \fBmitogen\-fakessh agents\fR lists them: platform, size,
upload size, SHA\-256 and source.
.PP
It goes gzip'd where the remote has gzip, checked by SHA\-256 after
decompressing (a corrupted upload is asked for once more), and is kept in
the first place where it is seen to execute: the cache below,
\fB$XDG_RUNTIME_DIR/mitogen\-fakessh\fR, then
\fBmitogen\-fakessh\-UID\fR in \fB/dev/shm\fR, \fB/tmp\fR and
\fB/var/tmp\fR (or only \fB\-\-agent\-dir\fR). The bootstrap is one
line that any login shell passes to \fB/bin/sh\fR unchanged.
.SH EXIT STATUS
The exit status of COMMAND (128+N if it was killed by signal N); 255 when
mitogen\-fakessh fails before COMMAND ran. Inside COMMAND, \fBssh\fR exits
with the remote command's status, and with 255 for transport errors and when
the remote command died of a signal, as OpenSSH's client does.
.SH ENVIRONMENT
.TP
\fBMITOGEN_FAKESSH_LOG\fR
A RUST_LOG\-style filter that overrides \fB\-v\fR and \fB\-q\fR.
.TP
\fBMITOGEN_FAKESSH_AGENTS\fR
An agents directory searched first (see AGENTS).
.TP
\fBSSH_ASKPASS\fR, \fBSSH_ASKPASS_REQUIRE\fR
As for OpenSSH: how the passphrase of an encrypted key file, or an ssh
hop's password, is asked for when no terminal is there (or always, with
\fBforce\fR). An unlocked key is kept for the rest of the run, so later
hops do not ask again.
.TP
\fBPATH\fR
COMMAND runs with a private directory holding the \fBssh\fR, \fBscp\fR and
\fBsftp\fR shims first on its PATH.
.TP
\fBMITOGEN_FAKESSH_FD\fR, \fBMITOGEN_FAKESSH_SOCK\fR, \fBMITOGEN_FAKESSH_SSH\fR, \fBMITOGEN_FAKESSH_REAL_SCP\fR, \fBMITOGEN_FAKESSH_REAL_SFTP\fR
Set for COMMAND: the inherited control socket, the fallback socket (in a
0700 directory, for callers that close inherited descriptors), the shim's
path and the real scp and sftp (resolved before PATH changed). They carry no
secrets. \fBMITOGEN_FAKESSH_SOCK_UID\fR names the host's uid: a shim that
became root (sudo, su, doas) believes a fallback socket of that uid; other
shims believe their own uid's and root's only, in a directory of that uid
writable by nobody else and not reached through a symbolic link.
.SH FILES
.TP
\fB${XDG_CONFIG_HOME:\-~/.config}/mitogen\-fakessh/config\fR
The team config file (or \fB\-\-config FILE\fR; \fBnone\fR for none), in
TOML: @CONFIG_KEYS@ as
the flags of those names, and \fB[[host]]\fR tables with \fBpattern\fR,
\fBchain\fR and an optional \fBagent\-dir\fR for that rule's chains.
Relative paths are relative to the file, \fB~/\fR to the home directory.
The command line wins over it; errors name the file and line.
.TP
\fB~/.ssh/config\fR, \fB/etc/ssh/ssh_config\fR
Read for \fBssh:\fR hops (\fB\-\-ssh\-config\fR replaces both, like
\fBssh \-F\fR), with OpenSSH's rules: first value wins, \fBHost\fR blocks,
\fBInclude\fR (relative to ~/.ssh or /etc/ssh, wildcards, also inside a
block) and \fBMatch\fR with every criterion of OpenSSH 10.2: \fBall\fR,
\fBcanonical\fR, \fBfinal\fR, \fBexec\fR, \fBhost\fR, \fBoriginalhost\fR,
\fBuser\fR, \fBlocaluser\fR, \fBlocalnetwork\fR, \fBtagged\fR (the \fBTag\fR
keyword, or the \fBssh\fR shim's \fB\-P\fR), \fBversion\fR (matched against
\fB@VERSION@\fR: every keyword of that release's ssh_config(5) is accepted),
\fBcommand\fR (the remote command's words joined by spaces, or the subsystem's
name) and \fBsessiontype\fR (\fBshell\fR, \fBexec\fR, \fBsubsystem\fR for
\fB\-s\fR, \fBnone\fR for \fB\-N\fR and \fB\-W\fR). The \fBssh\fR shim evaluates
them for its own command; the host configures a connection for the first
session that asks for it, as a ControlMaster is configured by the ssh that
started it (a bastion before it, reached as ProxyJump is, gets
\fBsessiontype none\fR). An applicable \fBRefuseConnection\fR stops the
session before it connects, with OpenSSH's message (FILE \fBline\fR N\fB:
RefuseConnection:\fR TEXT) and status 255, whatever its argument, as in
OpenSSH. Old names (KeepAlive, IdentityFile2, ChallengeResponseAuthentication
and the other aliases) are their keywords; OpenSSH's deprecated keywords are
ignored and its unsupported ones warned about. Lines are split as OpenSSH splits them
(both kinds of quotes, backslash escapes, \fB#\fR comments); a keyword OpenSSH
does not know is an error unless \fBIgnoreUnknown\fR names it; the \fB%\fR
tokens (%%, %C, %d, %h, %i, %j, %k, %L, %l, %n, %p, %r, %u, each where
OpenSSH takes it) and \fB${VAR}\fR (in file names) are expanded. The \fBssh\fR
shim reads the same files (or its own \fB\-F\fR) for \fBSendEnv\fR,
\fBSetEnv\fR, \fBRemoteCommand\fR, \fBRequestTTY\fR and \fBssh \-G\fR.
Keywords used: HostName, User, Port, IdentityFile
(with its KEY\-cert.pub, if any), CertificateFile, IdentitiesOnly, UserKnownHostsFile, GlobalKnownHostsFile,
StrictHostKeyChecking, HashKnownHosts, ProxyJump, ProxyCommand (the first of the two wins;
for the first ssh hop of a chain), ConnectTimeout (also bounds the key
exchange), ServerAliveInterval, ServerAliveCountMax, BatchMode,
NumberOfPasswordPrompts, Tag, IgnoreUnknown, RefuseConnection, SendEnv, SetEnv,
RemoteCommand, RequestTTY, and for the \fBssh\fR shim's forwarding LocalForward, RemoteForward,
DynamicForward, ForwardAgent, ExitOnForwardFailure, GatewayPorts and
ClearAllForwardings. The crypto policy: KexAlgorithms, Ciphers, MACs,
HostKeyAlgorithms (also \fBssh \-c\fR and \fB\-m\fR),
PubkeyAcceptedAlgorithms (the keys and certificates offered, from files
and ssh\-agent alike; a key outside it is skipped, said with \fB\-v\fR),
CASignatureAlgorithms (a host certificate signed otherwise is judged by
its plain key) and RequiredRSASize (smaller RSA host keys are refused,
smaller RSA keys of ours not used), with OpenSSH's
\fB+\fR, \fB\-\fR (wildcards) and \fB^\fR lists; our default offers
mlkem768x25519\-sha256 first. A name our client does not implement is an
error, as an unknown name is to OpenSSH; a server that offers nothing in
the list fails with OpenSSH's \fBno matching ... found\fR. The \fBssh\fR
shim answers \fB\-O check\fR, \fB\-O exit\fR and \fB\-O stop\fR about
the host's context for the destination (exit and stop end it) and refuses
the other \fB\-O\fR commands. Accepted (in files and as \fB\-o\fR) without effect,
because @IGNORED@.
.TP
\fB~/.ssh/known_hosts\fR, \fB/etc/ssh/ssh_known_hosts\fR
Host keys (or UserKnownHostsFile, GlobalKnownHostsFile). \fB@cert\-authority\fR
lines make host certificates signed by that CA trusted for the names they
match; \fB@revoked\fR keys are refused.
.TP
\fB${TMPDIR:\-/tmp}/mitogen\-fakessh.*/\fR
The shim directory (mode 0755, so a descendant of COMMAND that changed user
can still run the shims; the host refuses its sessions), with the fallback
socket in its mode 0700 \fBprivate/\fR subdirectory; removed when COMMAND
exits.
.TP
\fB${XDG_CACHE_HOME:\-$HOME/.cache}/mitogen\-fakessh/\fR
On remote hosts: the cached agent binary, named by its SHA\-256, and a
\fB.ok\-\fRSHA256 marker once it was seen to execute there (see AGENTS).
.SH SECURITY
Only COMMAND and its descendants can open sessions: they inherit the control
socket. For callers that close inherited descriptors the host also listens
in a 0700 directory and accepts only its own uid and root there. A shim holds no authority of its own; the
host decides where each session runs and spawns it as the ancestor of every
agent. Agents accept spawn and connect requests only from an ancestor, and
a stream that sends a frame whose claimed authority or source it does not
lead to is cut off.
Passwords are never put on any command line or in COMMAND's environment.
"#;

/// The keywords accepted without effect, by reason: "REASON: A, B; ...".
fn ignored_keywords() -> String {
    use ssh_config::keywords::{Why, ignored};
    Why::ALL
        .iter()
        .map(|why| {
            let names: Vec<&str> = ignored(*why).collect();
            format!("{}: {}", why.reason().replace('-', "\\-"), names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The config file's keys but `host` (its tables are described apart),
/// from the flags they stand for: a list for a repeatable flag.
fn config_keys() -> String {
    let mut command = crate::cli::host_command();
    command.build();
    crate::cli::config_keys(&command)
        .iter()
        .filter(|key| key.as_str() != "host")
        .map(|key| {
            let list = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(key.as_str()))
                .is_some_and(|arg| matches!(arg.get_action(), clap::ArgAction::Append));
            let key = format!("\\fB{}\\fR", roff_text(key));
            match list {
                true => format!("{key} (a list)"),
                false => key,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The complete man page in roff.
pub fn man_page() -> String {
    let man = clap_mangen::Man::new(Cli::command()).date("2026-11-27");
    let mut out = Vec::new();
    let rendered = man
        .render_title(&mut out)
        .and_then(|_| man.render_name_section(&mut out))
        .and_then(|_| man.render_synopsis_section(&mut out))
        .and_then(|_| man.render_description_section(&mut out))
        .and_then(|_| man.render_options_section(&mut out))
        .and_then(|_| {
            out.extend_from_slice(subcommands(&Cli::command()).as_bytes());
            let extra = EXTRA_SECTIONS
                .replace("@IGNORED@", &ignored_keywords())
                .replace("@CONFIG_KEYS@", &config_keys())
                .replace("@VERSION@", ssh_config::OPENSSH_VERSION);
            out.extend_from_slice(extra.as_bytes());
            out.extend_from_slice(PERSISTENT.as_bytes());
            let mut cli = Cli::command();
            // Built, so that each subcommand's synopsis names the program.
            cli.build();
            for title in ["start", "exec", "status", "stop"] {
                if let Some(cmd) = cli.find_subcommand(title) {
                    out.extend_from_slice(sub_command(title, cmd.clone()).as_bytes());
                }
            }
            man.render_version_section(&mut out)
        });
    rendered.expect("rendering into a Vec cannot fail");
    String::from_utf8(out).expect("roff output is UTF-8")
}

/// The SUBCOMMANDS section: one line each, from their definitions, and
/// how they and COMMAND are told apart.
fn subcommands(cli: &clap::Command) -> String {
    let mut out = String::from(".SH SUBCOMMANDS\n");
    for sub in cli.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.push_str(&format!(
            ".TP\n\\fBmitogen\\-fakessh {}\\fR\n{}\n",
            roff_text(sub.get_name()),
            roff_text(&about)
        ));
    }
    out.push_str(SUBCOMMAND_RULES);
    out
}

/// Text for roff: backslashes and hyphens escaped, no line starting with
/// a control character.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

/// Global options before a subcommand, and `--`.
const SUBCOMMAND_RULES: &str = r#".PP
Global options may come before a subcommand, as in \fBgit \-C dir status\fR:
\fBmitogen\-fakessh \-\-config team.toml start\fR. \fBstart\fR takes
them all (a list flag given on both sides keeps both, in order; another
flag may be given on one side only); \fBagents\fR uses \fB\-\-agent\fR,
\fB\-\-config\fR, \fB\-v\fR and \fB\-q\fR; \fBexec\fR, \fBstatus\fR
and \fBstop\fR use \fB\-v\fR and \fB\-q\fR alone, since the daemon's chains
were set by \fBstart\fR (a flag that would choose a chain is warned about).
\fB\-\-explain\fR and \fB\-\-grace\fR are for a run, and refused before a
subcommand.
.PP
Where COMMAND would begin, a word that names a subcommand is the
subcommand; after \fB\-\-\fR it is COMMAND:
\fBmitogen\-fakessh \-\- start\fR runs a program named start.
"#;

/// What the daemon commands are for; their flags follow, from their
/// definitions.
const PERSISTENT: &str = r#".SH FORWARDING
The \fBssh\fR shim forwards as OpenSSH's client does, from the end of the
hostname's chain: \fB\-L\fR (TCP or Unix sockets on either side),
\fB\-R\fR (\fB\-R 0:...\fR prints the port it allocated), \fB\-D\fR
(SOCKS4, SOCKS4a and SOCKS5, CONNECT only), \fB\-W host:port\fR (for
another client's ProxyCommand), \fB\-A\fR (the remote command's
\fBSSH_AUTH_SOCK\fR reaches this side's agent; after sudo, su or doas the
socket belongs to the target user, in a 0700 directory of theirs),
\fB\-N\fR and \fB\-f\fR (in the background once the forwards are up; it
ends with COMMAND's run, or with the daemon). Listeners bind loopback unless
\fBGatewayPorts yes\fR or an address says otherwise. Each forwarded
connection is a session of its own, flow-controlled like any other; one
that fails (a refused connect, SOCKS garbage) closes alone, said under
\fB\-v\fR.
.SH PERSISTENT CONTEXTS
\fBmitogen\-fakessh start\fR forks a daemon that keeps its contexts across
commands, and prints shell code to \fBeval\fR, as ssh\-agent does:
\fBeval "$(mitogen\-fakessh start \-\-host 'web*=ssh:%h,sudo:root')"\fR.
From then on ssh, scp, sftp, rsync and git in that shell go through the
daemon (\fBMITOGEN_FAKESSH_SOCK\fR names its socket, its shims come first on
\fBPATH\fR); \fBmitogen\-fakessh exec \-\- COMMAND\fR does the same for one
command. \fBstart\fR takes every flag of a run (not COMMAND, \fB\-\-explain\fR
or \fB\-\-grace\fR), and those below.
.PP
Without \fB\-\-socket\fR the socket is
\fB$XDG_RUNTIME_DIR/mitogen\-fakessh/daemon.sock\fR, or, without a private
\fB$XDG_RUNTIME_DIR\fR (su, cron, CI, containers), in a fresh directory
made as ssh\-agent makes its own (mkdtemp, mode 0700):
\fB${TMPDIR:\-/tmp}/mitogen\-fakessh\-daemon\-XXXXXXXXXX/daemon.sock\fR, a
name nobody can pre\-create. The socket's directory must be yours,
writable by you alone and not a symbolic link (created 0700 if missing; a
path longer than a Unix socket takes is an error), and the daemon serves
its own uid alone (SO_PEERCRED): another is refused and the refusal logged
in \fISOCKET\fB.log\fR. \fBexec\fR, \fBstatus\fR and \fBstop\fR (and the
shims) make the same checks of the directory, and check that the daemon
listening runs as their own uid, before they believe a word of its answer;
anything else is refused in one line naming the place and the uid. A
socket left by a dead daemon is replaced; one with a live daemon behind it
is left alone.
A context with no session for the idle timeout is ended (default 10
minutes: long enough to span the steps of a work session or a pipeline,
short enough that a remote agent, and a root shell behind sudo, does not
outlive its use by hours; sudo's own credential cache lasts 15 minutes
by default, sudoers(5) \fBtimestamp_timeout\fR); its next session
reconnects, as does one whose link died.
\fBstop\fR ends the remote agents and their commands, then removes the
socket, the shims and the directory it made, and prints the shell code
that undoes \fBstart\fR's, as \fBssh\-agent \-k\fR does:
\fBeval "$(mitogen\-fakessh stop)"\fR unsets its variables and takes its
shims off \fBPATH\fR (\fB\-s\fR, \fB\-c\fR, \fB\-\-fish\fR as for
\fBstart\fR). It prints that code even when the daemon it names is gone or
refused, if it is the one \fBMITOGEN_FAKESSH_SOCK\fR names.
"#;

/// One daemon command's synopsis and its own flags (the shared ones are
/// documented once, above).
fn sub_command(title: &str, mut cmd: clap::Command) -> String {
    for shared in crate::cli::host_command().get_arguments() {
        let shared = shared.get_id().clone();
        if cmd.get_arguments().any(|a| *a.get_id() == shared) {
            cmd = cmd.mut_arg(shared, |a| a.hide(true));
        }
    }
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    let _ = man
        .render_synopsis_section(&mut out)
        .and_then(|_| man.render_options_section(&mut out));
    String::from_utf8_lossy(&out)
        .replace(".SH SYNOPSIS", &format!(".SS mitogen\\-fakessh {title}"))
        .replace(".SH OPTIONS\n", "")
}

/// A shell we cannot write completions for.
#[derive(Debug, thiserror::Error)]
#[error("completions: unknown shell {0:?} (expected bash, zsh or fish)")]
pub struct UnknownShell(String);

/// Print completions for `shell` (bash, zsh or fish) on stdout.
pub fn print_completions(shell: &str) -> Result<(), UnknownShell> {
    use clap_complete::Shell;
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => return Err(UnknownShell(other.to_string())),
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "mitogen-fakessh",
        &mut std::io::stdout(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in page must be what the clap definition generates.
    /// Regenerate with: MITOGEN_FAKESSH_UPDATE_MAN=1 cargo test -p fakessh man_page
    #[test]
    fn man_page_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/mitogen-fakessh.1");
        let generated = man_page();
        if std::env::var_os("MITOGEN_FAKESSH_UPDATE_MAN").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "man/mitogen-fakessh.1 is stale; regenerate it with: MITOGEN_FAKESSH_UPDATE_MAN=1 cargo test -p fakessh man_page"
        );
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "CHAINS",
            "EXAMPLES",
            "AGENTS",
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "SECURITY",
        ] {
            assert!(
                generated.contains(&format!(".SH {section}"))
                    || generated.contains(&format!(".SH \"{section}\"")),
                "missing {section}"
            );
        }
    }
}
