//! `scp` and `sftp` run a compiled-in ssh path and ignore `PATH`, so their
//! shims exec the real tool with `-S <our ssh>` in front of the user's
//! arguments.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::env;
use crate::out::say;

/// Exec the real `tool` (`scp` or `sftp`); returns only on failure.
pub fn exec_with_our_ssh(tool: &str, args: &[std::ffi::OsString]) -> i32 {
    let real_var = if tool == "scp" {
        env::REAL_SCP
    } else {
        env::REAL_SFTP
    };
    let Some(real) = std::env::var_os(real_var).filter(|v| !v.is_empty()) else {
        say!(
            "{tool}: the real {tool} was not found when mitogen-fakessh started; install it (e.g. apt-get install openssh-client)"
        );
        return 255;
    };
    let Some(ssh) = std::env::var_os(env::SHIM_SSH) else {
        say!(
            "{tool}: not running under mitogen-fakessh ({} is unset)",
            env::SHIM_SSH
        );
        return 255;
    };
    let err = Command::new(&real)
        .arg0(tool)
        .arg("-S")
        .arg(ssh)
        .args(args)
        .exec();
    say!("{tool}: cannot run {}: {err}", real.to_string_lossy());
    255
}
