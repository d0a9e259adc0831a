//! The SOCKS side of `ssh -D`, as OpenSSH's: SOCKS4, SOCKS4a and SOCKS5,
//! no authentication, CONNECT only. The request is read here; the reply
//! that the connection is made comes from the far side, first on the
//! stream, once it is.

use std::io::Read;

/// Where a client asked to go, and what to tell it once connected.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub host: String,
    pub port: u16,
    pub reply: Vec<u8>,
}

/// A client that does not speak SOCKS as we do (it gets closed).
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    #[error("reading the SOCKS request: {0}")]
    Io(#[from] std::io::Error),
    #[error("SOCKS version {0} is not 4 or 5")]
    Version(u8),
    #[error("SOCKS command {0} is not CONNECT")]
    Command(u8),
    #[error("no acceptable SOCKS5 authentication method (only none)")]
    NoMethod,
    #[error("SOCKS address type {0} is not supported")]
    AddressType(u8),
    #[error("a SOCKS field is too long")]
    TooLong,
}

fn byte(r: &mut impl Read) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// A NUL-terminated string (SOCKS4's user id and 4a's host name).
fn c_string(r: &mut impl Read) -> Result<String, SocksError> {
    let mut out = Vec::new();
    loop {
        match byte(r)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            b if out.len() < 255 => out.push(b),
            _ => return Err(SocksError::TooLong),
        }
    }
}

/// Read one SOCKS request from `r`; `w` gets the SOCKS5 method choice.
pub fn read_request(r: &mut impl Read, w: &mut impl std::io::Write) -> Result<Request, SocksError> {
    match byte(r)? {
        4 => {
            let command = byte(r)?;
            if command != 1 {
                return Err(SocksError::Command(command));
            }
            let mut port = [0u8; 2];
            r.read_exact(&mut port)?;
            let mut ip = [0u8; 4];
            r.read_exact(&mut ip)?;
            let _user = c_string(r)?;
            // 0.0.0.x with x != 0: SOCKS4a, the host name follows.
            let host = match ip {
                [0, 0, 0, x] if x != 0 => c_string(r)?,
                _ => std::net::Ipv4Addr::from(ip).to_string(),
            };
            Ok(Request {
                host,
                port: u16::from_be_bytes(port),
                // Granted, with the port and address the client sent.
                reply: [&[0u8, 90][..], &port, &ip].concat(),
            })
        }
        5 => {
            let methods = byte(r)? as usize;
            let mut offered = vec![0u8; methods];
            r.read_exact(&mut offered)?;
            if !offered.contains(&0) {
                let _ = w.write_all(&[5, 0xff]);
                return Err(SocksError::NoMethod);
            }
            w.write_all(&[5, 0])?;
            let _version = byte(r)?;
            let command = byte(r)?;
            let _reserved = byte(r)?;
            if command != 1 {
                // Command not supported.
                let _ = w.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
                return Err(SocksError::Command(command));
            }
            let host = match byte(r)? {
                1 => {
                    let mut ip = [0u8; 4];
                    r.read_exact(&mut ip)?;
                    std::net::Ipv4Addr::from(ip).to_string()
                }
                3 => {
                    let len = byte(r)? as usize;
                    let mut name = vec![0u8; len];
                    r.read_exact(&mut name)?;
                    String::from_utf8_lossy(&name).into_owned()
                }
                4 => {
                    let mut ip = [0u8; 16];
                    r.read_exact(&mut ip)?;
                    std::net::Ipv6Addr::from(ip).to_string()
                }
                other => {
                    let _ = w.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
                    return Err(SocksError::AddressType(other));
                }
            };
            let mut port = [0u8; 2];
            r.read_exact(&mut port)?;
            Ok(Request {
                host,
                port: u16::from_be_bytes(port),
                // Succeeded; bound address 0.0.0.0:0, as OpenSSH answers.
                reply: vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            })
        }
        other => Err(SocksError::Version(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> (Result<Request, SocksError>, Vec<u8>) {
        let mut out = Vec::new();
        let r = read_request(&mut &bytes[..], &mut out);
        (r, out)
    }

    #[test]
    fn socks4_4a_and_5() {
        let (r, _) = request(&[4, 1, 0, 80, 10, 0, 0, 1, b'u', 0]);
        let r = r.unwrap();
        assert_eq!((r.host.as_str(), r.port), ("10.0.0.1", 80));
        assert_eq!(r.reply, [0, 90, 0, 80, 10, 0, 0, 1]);
        let (r, _) = request(&[4, 1, 0, 80, 0, 0, 0, 1, 0, b'w', b'e', b'b', 0]);
        assert_eq!(r.unwrap().host, "web");
        let mut v5 = vec![5, 1, 0, 5, 1, 0, 3, 3];
        v5.extend_from_slice(b"web");
        v5.extend_from_slice(&[0x1f, 0x90]);
        let (r, method) = request(&v5);
        let r = r.unwrap();
        assert_eq!((r.host.as_str(), r.port), ("web", 8080));
        assert_eq!(method, [5, 0]);
        let (r, _) = request(&[
            5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22,
        ]);
        assert_eq!(r.unwrap().host, "::1");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            request(b"GET / HTTP/1.0").0,
            Err(SocksError::Version(b'G'))
        ));
        assert!(matches!(request(&[5, 1, 2]).0, Err(SocksError::NoMethod)));
        assert!(matches!(
            request(&[5, 1, 0, 5, 2, 0, 1]).0,
            Err(SocksError::Command(2))
        ));
        assert!(matches!(request(&[4, 1, 0]).0, Err(SocksError::Io(_))));
    }
}
