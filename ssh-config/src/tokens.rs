//! `%` tokens and `${VAR}` in configuration values, expanded as OpenSSH
//! 9.x expands them: each keyword accepts its own set of tokens, and an
//! unknown token or an unset variable is an error.

use sha1::{Digest, Sha1};

/// Which tokens a keyword accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSet {
    /// `HostName`: `%%` and `%h`.
    HostName,
    /// `ProxyCommand` and `ProxyJump`: `%%`, `%h`, `%n`, `%p`, `%r`.
    Proxy,
    /// Files and commands (`IdentityFile`, `CertificateFile`,
    /// `UserKnownHostsFile`, `ControlPath`, `IdentityAgent`, `Match exec`,
    /// `RemoteCommand`, `LocalForward`/`RemoteForward` sockets):
    /// `%%`, `%C`, `%d`, `%h`, `%i`, `%j`, `%k`, `%L`, `%l`, `%n`, `%p`,
    /// `%r`, `%u`.
    Files,
}

impl TokenSet {
    fn accepts(self, token: char) -> bool {
        match self {
            TokenSet::HostName => matches!(token, '%' | 'h'),
            TokenSet::Proxy => matches!(token, '%' | 'h' | 'n' | 'p' | 'r'),
            TokenSet::Files => "%CdhijkLlnpru".contains(token),
        }
    }
}

/// What the tokens stand for, for one destination.
#[derive(Clone, Debug, Default)]
pub struct TokenValues {
    /// `%n`: the host name as given on the command line.
    pub original_host: String,
    /// `%h`: the host name after `HostName`.
    pub host: String,
    /// `%p`.
    pub port: u16,
    /// `%r`.
    pub remote_user: String,
    /// `%k`: `HostKeyAlias`, else `%n`.
    pub host_key_alias: Option<String>,
    /// `%j`: `ProxyJump`, or empty.
    pub proxy_jump: String,
}

/// Why a value could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("percent_expand: unknown key %{0}")]
    UnknownToken(char),
    #[error("percent_expand: invalid format")]
    TrailingPercent,
    #[error("env var ${{{0}}} has no value")]
    UnsetVariable(String),
    #[error("environment variable expansion: unterminated ${{")]
    Unterminated,
}

/// Expand the `%` tokens of `set` in `value`.
pub fn percent(value: &str, set: TokenSet, v: &TokenValues) -> Result<String, TokenError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let token = chars.next().ok_or(TokenError::TrailingPercent)?;
        if !set.accepts(token) {
            return Err(TokenError::UnknownToken(token));
        }
        match token {
            '%' => out.push('%'),
            'C' => out.push_str(&connection_hash(v)),
            'd' => out.push_str(&crate::paths::home_dir().to_string_lossy()),
            'h' => out.push_str(&v.host),
            'i' => out.push_str(&nix::unistd::getuid().to_string()),
            'j' => out.push_str(&v.proxy_jump),
            'k' => out.push_str(v.host_key_alias.as_deref().unwrap_or(&v.original_host)),
            'L' => out.push_str(&short_hostname()),
            'l' => out.push_str(&local_hostname()),
            'n' => out.push_str(&v.original_host),
            'p' => out.push_str(&v.port.to_string()),
            'r' => out.push_str(&v.remote_user),
            'u' => out.push_str(&crate::paths::local_user()),
            _ => return Err(TokenError::UnknownToken(token)),
        }
    }
    Ok(out)
}

/// Expand `${VAR}` from our environment; an unset variable is an error.
pub fn environment(value: &str) -> Result<String, TokenError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(TokenError::Unterminated)?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| TokenError::UnsetVariable(name.to_string()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `%C`: the SHA-1 of `%l%h%p%r`, in hex, as OpenSSH 9.2 computes it.
fn connection_hash(v: &TokenValues) -> String {
    let mut hash = Sha1::new();
    hash.update(local_hostname().as_bytes());
    hash.update(v.host.as_bytes());
    hash.update(v.port.to_string().as_bytes());
    hash.update(v.remote_user.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `%l`: this machine's name, domain included.
fn local_hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `%L`: this machine's name up to the first dot.
fn short_hostname() -> String {
    let full = local_hostname();
    full.split('.').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TokenValues {
        TokenValues {
            original_host: "web".into(),
            host: "web.example.org".into(),
            port: 2222,
            remote_user: "deploy".into(),
            host_key_alias: None,
            proxy_jump: "gw".into(),
        }
    }

    #[test]
    fn each_keyword_takes_its_own_tokens() {
        let v = values();
        assert_eq!(
            percent("%h:%p %n %r %j %k %%", TokenSet::Files, &v).unwrap(),
            "web.example.org:2222 web deploy gw web %"
        );
        assert_eq!(
            percent("nc %h %p", TokenSet::Proxy, &v).unwrap(),
            "nc web.example.org 2222"
        );
        assert_eq!(
            percent("%j", TokenSet::Proxy, &v),
            Err(TokenError::UnknownToken('j'))
        );
        assert_eq!(
            percent("%p", TokenSet::HostName, &v),
            Err(TokenError::UnknownToken('p'))
        );
        assert_eq!(
            percent("50%", TokenSet::Files, &v),
            Err(TokenError::TrailingPercent)
        );
        assert_eq!(
            percent("%X", TokenSet::Files, &v),
            Err(TokenError::UnknownToken('X'))
        );
        let hash = percent("%C", TokenSet::Files, &v).unwrap();
        assert_eq!(hash.len(), 40);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            percent("%i", TokenSet::Files, &v).unwrap(),
            nix::unistd::getuid().to_string()
        );
    }

    #[test]
    fn environment_variables() {
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(environment("${HOME}/.ssh").unwrap(), format!("{home}/.ssh"));
        assert_eq!(environment("no vars").unwrap(), "no vars");
        assert_eq!(
            environment("${MITOGEN_FAKESSH_SURELY_UNSET}/x"),
            Err(TokenError::UnsetVariable(
                "MITOGEN_FAKESSH_SURELY_UNSET".into()
            ))
        );
        assert_eq!(environment("${HOME"), Err(TokenError::Unterminated));
    }
}
