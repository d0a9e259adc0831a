//! Which host and user names OpenSSH accepts from its command line: none
//! that a shell would take as syntax, so a name can never inject a command
//! through `%h` or `%r` in `Match exec` or `ProxyCommand` (the class of
//! CVE-2023-51385).

/// A host name OpenSSH's `valid_hostname` accepts: not starting with `-`,
/// and free of quotes, `` ` ``, `$`, `\`, `;`, `&`, `<`, `>`, `|`, `(`, `)`,
/// `{`, `}`, blanks and control characters.
pub fn valid_hostname(name: &str) -> bool {
    !name.starts_with('-')
        && !name
            .chars()
            .any(|c| "'`\"$\\;&<>|(){}".contains(c) || c.is_ascii_whitespace() || c.is_control())
}

/// A user name OpenSSH's `valid_ruser` accepts: not starting with `-`,
/// free of quotes, `` ` ``, `;`, `&`, `<`, `>`, `|`, `(`, `)`, `{`, `}`,
/// with no `-` right after a blank and no `\` at the end.
pub fn valid_user(name: &str) -> bool {
    if name.starts_with('-') || name.ends_with('\\') {
        return false;
    }
    let chars: Vec<char> = name.chars().collect();
    let blank_then_dash =
        |i: usize| chars[i].is_ascii_whitespace() && chars.get(i + 1) == Some(&'-');
    !chars
        .iter()
        .enumerate()
        .any(|(i, c)| "'`\";&<>|(){}".contains(*c) || blank_then_dash(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for good in [
            "web1",
            "web1.example.org",
            "::1",
            "fe80::1%eth0",
            "h_1",
            "10.0.0.1",
        ] {
            assert!(valid_hostname(good), "{good}");
        }
        for bad in [
            "$(touch pwned)",
            "`id`",
            "a;b",
            "a b",
            "-oProxyCommand=x",
            "a|b",
            "a\nb",
            "a'b",
            "a\\b",
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn users() {
        for good in ["deploy", "x y", "a$b", "a\\b", "DOMAIN\\user x"] {
            assert!(valid_user(good), "{good}");
        }
        // `$` is allowed in user names, but the parentheses are not.
        assert!(!valid_user("$(touch x)"));
        for bad in ["-l", "a -b", "a;b", "a`b`", "a\\", "a'b"] {
            assert!(!valid_user(bad), "{bad}");
        }
    }
}
