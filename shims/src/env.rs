//! Environment variables through which the host talks to its shims.
//! They carry no secrets: only fd numbers and paths.

/// Number of the inherited SOCK_SEQPACKET socket that leads to the host.
pub const CONTROL_FD: &str = "MITOGEN_FAKESSH_FD";
/// Path of the host's fallback socket (SOCK_SEQPACKET, in the 0700 shim
/// directory), for a shim whose inherited socket a program on the way closed.
pub const CONTROL_PATH: &str = "MITOGEN_FAKESSH_SOCK";
/// The uid the host at [`CONTROL_PATH`] runs as: a shim that became root
/// (sudo, su, doas) believes a listener of that uid too. Other shims believe
/// their own uid and root only.
pub const CONTROL_UID: &str = "MITOGEN_FAKESSH_SOCK_UID";
/// The host's `--ssh-config FILE`, read instead of ~/.ssh/config and
/// /etc/ssh/ssh_config, as by the host's own connections.
pub const SSH_CONFIG: &str = "MITOGEN_FAKESSH_SSH_CONFIG";
/// Path of the `ssh` shim, for `scp -S` / `sftp -S`.
pub const SHIM_SSH: &str = "MITOGEN_FAKESSH_SSH";
/// Real programs, resolved before `PATH` was changed.
pub const REAL_SCP: &str = "MITOGEN_FAKESSH_REAL_SCP";
pub const REAL_SFTP: &str = "MITOGEN_FAKESSH_REAL_SFTP";
