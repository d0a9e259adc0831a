//! Forwarding specifications as OpenSSH's `parse_forward` reads them:
//! fields split on `:` or `/`, `[...]` around an IPv6 address, a field
//! starting with `/` a Unix socket path.
//!
//! ```text
//! -L [bind_address:]port:host:hostport   -L [bind_address:]port:remote_socket
//! -L local_socket:host:hostport          -L local_socket:remote_socket
//! -R (the same, the listening end on the far side; port 0 allocates one)
//! -D [bind_address:]port                 -W host:port
//! ```

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP port, on `bind` (None: the default, loopback).
    Tcp { bind: Option<String>, port: u16 },
    /// A Unix socket.
    Unix(String),
}

/// Where a forwarded connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connect {
    Tcp { host: String, port: u16 },
    Unix(String),
}

/// `-L` or `-R`: a listener and where its connections go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub listen: Listen,
    pub connect: Connect,
}

/// Which option a specification came from (for OpenSSH's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Remote,
    Dynamic,
    Stdio,
}

/// A forwarding specification we cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// One OpenSSH would refuse too: its message.
    #[error("Bad {} forwarding specification '{spec}'", kind_name(*kind))]
    Bad { kind: Kind, spec: String },
    /// `-R [bind_address:]port` alone: OpenSSH's SOCKS proxy on the far
    /// side.
    #[error("ssh: remote dynamic forwarding (-R {0}) is not supported by mitogen-fakessh")]
    RemoteDynamic(String),
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Local => "local",
        Kind::Remote => "remote",
        Kind::Dynamic => "dynamic",
        Kind::Stdio => "stdio",
    }
}

/// One field: its text, and whether it is a path.
struct Field {
    text: String,
    path: bool,
}

/// Split on `:` or `/` outside brackets; a field starting with `/` runs to
/// the next `:` (a path may not hold one).
fn fields(spec: &str) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut rest = spec.trim_start();
    loop {
        let (field, path, after) = if let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let after = &inner[close + 1..];
            if !(after.is_empty() || after.starts_with([':', '/'])) {
                return None;
            }
            (inner[..close].to_string(), false, after)
        } else if rest.starts_with('/') {
            let end = rest.find(':').unwrap_or(rest.len());
            (rest[..end].to_string(), true, &rest[end..])
        } else {
            let end = rest.find([':', '/']).unwrap_or(rest.len());
            (rest[..end].to_string(), false, &rest[end..])
        };
        out.push(Field { text: field, path });
        match after.chars().next() {
            None => return Some(out),
            Some(_) => rest = &after[1..],
        }
        if out.len() > 4 {
            return None;
        }
    }
}

/// OpenSSH's `a2port`: 0 to 65535.
fn port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok()
}

/// An empty or `*` bind address means every interface, as in OpenSSH.
fn bind(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// `-L` (`remote` false) or `-R` (`remote` true).
pub fn parse_forward(spec: &str, remote: bool) -> Result<Forward, SpecError> {
    let kind = if remote { Kind::Remote } else { Kind::Local };
    let bad = || SpecError::Bad {
        kind,
        spec: spec.to_string(),
    };
    let f = fields(spec).ok_or_else(bad)?;
    let tcp = |host: &Field, p: &Field| -> Option<Connect> {
        Some(Connect::Tcp {
            host: host.text.clone(),
            port: port(&p.text).filter(|p| *p > 0)?,
        })
    };
    let listen_port = |p: &Field| port(&p.text).filter(|p| remote || *p > 0);
    let forward = match f.as_slice() {
        [a] if remote && !a.path && port(&a.text).is_some() => {
            return Err(SpecError::RemoteDynamic(spec.to_string()));
        }
        [a, b] if remote && !a.path && !b.path && port(&b.text).is_some() => {
            return Err(SpecError::RemoteDynamic(spec.to_string()));
        }
        [a, b] if a.path && b.path => Forward {
            listen: Listen::Unix(a.text.clone()),
            connect: Connect::Unix(b.text.clone()),
        },
        [a, b] if b.path && !a.path => Forward {
            listen: Listen::Tcp {
                bind: None,
                port: listen_port(a).ok_or_else(bad)?,
            },
            connect: Connect::Unix(b.text.clone()),
        },
        [a, b, c] if a.path => Forward {
            listen: Listen::Unix(a.text.clone()),
            connect: tcp(b, c).ok_or_else(bad)?,
        },
        [a, b, c] if c.path => Forward {
            listen: Listen::Tcp {
                bind: bind(&a.text),
                port: listen_port(b).ok_or_else(bad)?,
            },
            connect: Connect::Unix(c.text.clone()),
        },
        [a, b, c] => Forward {
            listen: Listen::Tcp {
                bind: None,
                port: listen_port(a).ok_or_else(bad)?,
            },
            connect: tcp(b, c).ok_or_else(bad)?,
        },
        [a, b, c, d] if !a.path && !b.path && !c.path && !d.path => Forward {
            listen: Listen::Tcp {
                bind: bind(&a.text),
                port: listen_port(b).ok_or_else(bad)?,
            },
            connect: tcp(c, d).ok_or_else(bad)?,
        },
        _ => return Err(bad()),
    };
    Ok(forward)
}

/// `-D [bind_address:]port`.
pub fn parse_dynamic(spec: &str) -> Result<Listen, SpecError> {
    let bad = || SpecError::Bad {
        kind: Kind::Dynamic,
        spec: spec.to_string(),
    };
    match fields(spec).ok_or_else(bad)?.as_slice() {
        [p] if !p.path => Ok(Listen::Tcp {
            bind: None,
            port: port(&p.text).filter(|p| *p > 0).ok_or_else(bad)?,
        }),
        [b, p] if !b.path && !p.path => Ok(Listen::Tcp {
            bind: bind(&b.text),
            port: port(&p.text).filter(|p| *p > 0).ok_or_else(bad)?,
        }),
        _ => Err(bad()),
    }
}

/// `-W host:port`.
pub fn parse_stdio(spec: &str) -> Result<(String, u16), SpecError> {
    let bad = || SpecError::Bad {
        kind: Kind::Stdio,
        spec: spec.to_string(),
    };
    match fields(spec).ok_or_else(bad)?.as_slice() {
        [h, p] if !h.path && !p.path => Ok((h.text.clone(), port(&p.text).ok_or_else(bad)?)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Connect {
        Connect::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn local_and_remote_forms() {
        let f = parse_forward("8080:db:5432", false).unwrap();
        assert_eq!(
            f,
            Forward {
                listen: Listen::Tcp {
                    bind: None,
                    port: 8080
                },
                connect: tcp("db", 5432)
            }
        );
        let f = parse_forward("0.0.0.0:8080:db:5432", false).unwrap();
        assert_eq!(
            f.listen,
            Listen::Tcp {
                bind: Some("0.0.0.0".into()),
                port: 8080
            }
        );
        let f = parse_forward("[::1]:8080:[fe80::1]:22", false).unwrap();
        assert_eq!(f.connect, tcp("fe80::1", 22));
        let f = parse_forward("8080/db/5432", false).unwrap();
        assert_eq!(f.connect, tcp("db", 5432));
        let f = parse_forward("8080:/run/pg.sock", false).unwrap();
        assert_eq!(f.connect, Connect::Unix("/run/pg.sock".into()));
        let f = parse_forward("/tmp/l.sock:db:5432", false).unwrap();
        assert_eq!(f.listen, Listen::Unix("/tmp/l.sock".into()));
        let f = parse_forward("/tmp/l.sock:/run/r.sock", false).unwrap();
        assert_eq!(f.connect, Connect::Unix("/run/r.sock".into()));
        // Port 0 listens only on the far side, where it allocates one.
        assert!(parse_forward("0:db:5432", false).is_err());
        let f = parse_forward("0:localhost:80", true).unwrap();
        assert_eq!(
            f.listen,
            Listen::Tcp {
                bind: None,
                port: 0
            }
        );
    }

    #[test]
    fn openssh_messages() {
        for bad in [
            "8080",
            "8080:db",
            "x:db:5432",
            "8080:db:0",
            "8080:db:99999",
            "a:b:c:d:e",
            "",
        ] {
            let e = parse_forward(bad, false).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Bad local forwarding specification '{bad}'")
            );
        }
        assert_eq!(
            parse_forward("x:y", true).unwrap_err().to_string(),
            "Bad remote forwarding specification 'x:y'"
        );
        // OpenSSH's remote SOCKS proxy: valid there, refused here by name.
        for dynamic in ["8080", "localhost:8080", "1:2"] {
            assert_eq!(
                parse_forward(dynamic, true).unwrap_err(),
                SpecError::RemoteDynamic(dynamic.to_string())
            );
        }
        assert_eq!(
            parse_dynamic("1080").unwrap(),
            Listen::Tcp {
                bind: None,
                port: 1080
            }
        );
        assert_eq!(
            parse_dynamic("localhost:1080").unwrap(),
            Listen::Tcp {
                bind: Some("localhost".into()),
                port: 1080
            }
        );
        assert_eq!(
            parse_dynamic("x").unwrap_err().to_string(),
            "Bad dynamic forwarding specification 'x'"
        );
        assert_eq!(parse_stdio("db:5432").unwrap(), ("db".to_string(), 5432));
        assert_eq!(parse_stdio("[::1]:22").unwrap(), ("::1".to_string(), 22));
        assert_eq!(
            parse_stdio("db").unwrap_err().to_string(),
            "Bad stdio forwarding specification 'db'"
        );
    }
}
