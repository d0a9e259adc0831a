//! What a client's ssh command line says about the connection the host
//! opens for it (on-demand chains): its `-o`, `-i`, `-J` and `-F`, and the
//! session that asked first, for `Match command` and `Match sessiontype`.

use router::session::RemoteCommand;
use ssh_config::SessionAsked;

/// ssh `-o` options as (keyword, value), in order.
pub(super) type SshOptions = Vec<(String, String)>;

/// What a client's ssh command line says about its connection.
#[derive(Clone, Debug, Default)]
pub(super) struct ClientOptions {
    /// `-o` (and `-i`, `-J`), in order.
    pub options: SshOptions,
    /// `-F`: this file instead of the host's ssh config (`none`: no file).
    pub config_file: Option<String>,
    /// The session that asked first, for `Match command` and `Match
    /// sessiontype` (as a ControlMaster is configured by the ssh that
    /// started it); `None` for a chain no session asked for (a bastion
    /// before the hop that was asked for): `sessiontype none`.
    pub session: Option<SessionAsked>,
}

/// What `Match command` and `Match sessiontype` see of a session request:
/// its command (or subsystem) and whether it is a session at all (a
/// forward's connection is not).
pub(super) fn session_asked(command: &RemoteCommand) -> SessionAsked {
    use ssh_config::SessionType;
    match command {
        RemoteCommand::Exec(words) => SessionAsked {
            command: String::from_utf8_lossy(words).into_owned(),
            session_type: None,
        },
        RemoteCommand::Subsystem(name) => SessionAsked {
            command: name.clone(),
            session_type: Some(SessionType::Subsystem),
        },
        RemoteCommand::Shell => SessionAsked::default(),
        _ => SessionAsked::transport(),
    }
}
