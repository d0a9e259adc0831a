//! Splitting a configuration line into words, as OpenSSH 8.7 and later do
//! for ssh_config files and `-o` options alike: the keyword ends at
//! whitespace or at one `=`; its arguments are words separated by blanks,
//! where double or single quotes group (and may start or end mid-word), a
//! backslash escapes a quote, a backslash or (outside quotes) a space, and
//! a `#` at the start of a word ends the line.

/// Quotes that do not close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid quotes")]
pub struct InvalidQuotes;

/// A line split into its keyword and the text after it (whitespace and
/// one `=` skipped); `None` for a blank line or a comment.
pub fn keyword(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Some((key, rest.trim_matches([' ', '\t', '\r', '\n'])))
}

/// The words of `text`.
pub fn words(text: &str) -> Result<Vec<String>, InvalidQuotes> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => {}
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            }
            chars.next();
            match (c, quote) {
                ('\\', _) => match chars.peek() {
                    Some(&next @ ('\'' | '"' | '\\')) => {
                        chars.next();
                        word.push(next);
                    }
                    Some(' ') if quote.is_none() => {
                        chars.next();
                        word.push(' ');
                    }
                    _ => word.push('\\'),
                },
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(InvalidQuotes);
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text).unwrap()
    }

    #[test]
    fn keywords_end_at_blanks_or_one_equals() {
        assert_eq!(keyword("Port 22"), Some(("Port", "22")));
        assert_eq!(keyword("  Port=22"), Some(("Port", "22")));
        assert_eq!(keyword("Port = 22  "), Some(("Port", "22")));
        assert_eq!(keyword("\tUser\tann"), Some(("User", "ann")));
        assert_eq!(keyword("Port"), Some(("Port", "")));
        assert_eq!(keyword("# Port 22"), None);
        assert_eq!(keyword("   "), None);
    }

    #[test]
    fn words_as_openssh_splits_them() {
        assert_eq!(w("1 # comment"), ["1"]);
        assert_eq!(w("'ann'"), ["ann"]);
        assert_eq!(w("exec 'a b'"), ["exec", "a b"]);
        assert_eq!(w(r#""/a b/c""#), ["/a b/c"]);
        assert_eq!(w(r"h\ ost"), ["h ost"]);
        assert_eq!(w(r#"ab"c d"e"#), ["abc de"]);
        assert_eq!(w(r#"it\'s "q\"uote""#), ["it's", r#"q"uote"#]);
        assert_eq!(w(r"a\b c\\d"), [r"a\b", r"c\d"]);
        assert_eq!(w("a#b #c"), ["a#b"]);
        assert_eq!(w("'#' x"), ["#", "x"]);
        assert_eq!(w(""), Vec::<String>::new());
        assert_eq!(words("\"ab"), Err(InvalidQuotes));
        assert_eq!(words("'a b"), Err(InvalidQuotes));
    }
}
