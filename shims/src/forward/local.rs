//! Listeners on this side (`-L`, `-D`), bound as OpenSSH's client binds
//! them: loopback by default, every interface with `GatewayPorts yes` or an
//! address of `*` (or empty), else the address given.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

use proto::session::RemoteCommand;
use router::unix_listener::bind_owner_only;

use super::connection::Template;
use super::socks;
use super::spec::{Connect, Listen};

/// A listener of ours, on one or two addresses or a Unix socket.
pub enum Local {
    Tcp(Vec<TcpListener>),
    Unix(UnixListener, String),
}

/// What became of binding: OpenSSH's lines, and whether any address took.
pub struct Bound {
    pub listener: Option<Local>,
    pub errors: Vec<String>,
}

/// Bind `listen` (`gateway_ports`: a default bind is every interface).
pub fn bind(listen: &Listen, gateway_ports: bool) -> Bound {
    match listen {
        Listen::Tcp { bind, port } => {
            let hosts: &[&str] = match bind.as_deref() {
                None if gateway_ports => &["0.0.0.0", "::"],
                None | Some("localhost") => &["127.0.0.1", "::1"],
                Some("") | Some("*") => &["0.0.0.0", "::"],
                Some(host) => &[host][..],
            };
            let mut listeners = Vec::new();
            let mut errors = Vec::new();
            for host in hosts {
                match TcpListener::bind((*host, *port)) {
                    Ok(l) => listeners.push(l),
                    // No IPv6 on this machine: not worth a word.
                    Err(e)
                        if *host == "::1"
                            && !listeners.is_empty()
                            && e.raw_os_error() == Some(99) => {}
                    Err(e) => errors.push(format!("bind [{host}]:{port}: {}", describe(&e))),
                }
            }
            if listeners.is_empty() {
                errors.push(format!(
                    "channel_setup_fwd_listener_tcpip: cannot listen to port: {port}"
                ));
            }
            Bound {
                listener: (!listeners.is_empty()).then_some(Local::Tcp(listeners)),
                errors,
            }
        }
        // Mode 0600 from the moment the path exists (OpenSSH's
        // StreamLocalBindMask 0177): no other account ever connects.
        Listen::Unix(path) => match bind_owner_only(path.as_ref()) {
            Ok(l) => Bound {
                listener: Some(Local::Unix(l, path.clone())),
                errors: Vec::new(),
            },
            Err(e) => Bound {
                listener: None,
                errors: vec![format!(
                    "unix_listener: cannot bind to path {path}: {}",
                    describe(&e)
                )],
            },
        },
    }
}

/// An error as strerror words it (no "(os error N)").
fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// What a listener's connections become.
#[derive(Clone)]
pub enum Purpose {
    /// `-L`: a connection to this target on the far side.
    Forward(Connect),
    /// `-D`: a SOCKS request decides.
    Socks,
}

impl Local {
    /// Accept for ever, each connection in a session of its own (threads).
    pub fn serve(self, purpose: Purpose, template: Template) {
        match self {
            Local::Tcp(listeners) => {
                for l in listeners {
                    let (purpose, template) = (purpose.clone(), template.clone());
                    std::thread::spawn(move || {
                        for sock in l.incoming().flatten() {
                            let _ = sock.set_nodelay(true);
                            accepted(OwnedFd::from(sock), &purpose, &template);
                        }
                    });
                }
            }
            Local::Unix(l, _) => {
                std::thread::spawn(move || {
                    for sock in l.incoming().flatten() {
                        accepted(OwnedFd::from(sock), &purpose, &template);
                    }
                });
            }
        }
    }
}

fn accepted(sock: OwnedFd, purpose: &Purpose, template: &Template) {
    match purpose {
        Purpose::Forward(Connect::Tcp { host, port }) => template.spawn(
            RemoteCommand::TcpConnect {
                host: host.clone(),
                port: *port,
                greeting: Vec::new(),
            },
            sock,
        ),
        Purpose::Forward(Connect::Unix(path)) => {
            template.spawn(RemoteCommand::UnixConnect { path: path.clone() }, sock)
        }
        Purpose::Socks => {
            let template = template.clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::from(sock);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let mut writer = match stream.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                match socks::read_request(&mut stream, &mut writer) {
                    Ok(req) => {
                        let _ = stream.set_read_timeout(None);
                        template.spawn(
                            RemoteCommand::TcpConnect {
                                host: req.host,
                                port: req.port,
                                greeting: req.reply,
                            },
                            OwnedFd::from(stream),
                        )
                    }
                    // Garbage closes this client only.
                    Err(e) => template.log.debug(&format!("dynamic forward: {e}")),
                }
            });
        }
    }
}
