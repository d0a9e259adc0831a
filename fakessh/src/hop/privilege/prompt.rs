//! Recognising a password prompt on a privilege hop's pty, and keeping what
//! the program printed within bounds for a message (the line being read is
//! bounded by [`crate::hop::lines`]).

/// A line kept for a message is cut to this many bytes.
pub const MAX_LINE: usize = 240;

/// Whether `text`, the pty's output not yet judged, ends with a password
/// prompt. Only its last line counts. `marker` is the unique prompt sudo
/// was given with `-p`:
/// - sudo 1.9 prints it as it is, at the end of what it printed;
/// - sudo-rs wraps it: `[sudo: MARKER] Password: `, so that line is
///   complete once what follows the marker ends with a colon.
///
/// Without the marker on that line (su, doas), a line ending in
/// `password:` (any case) is the prompt.
pub fn is_password_prompt(text: &[u8], marker: &[u8]) -> bool {
    let line = match memchr::memrchr(b'\n', text) {
        Some(end) => &text[end + 1..],
        None => text,
    };
    let Some(at) = memchr::memmem::rfind(line, marker) else {
        const GENERIC: &[u8] = b"password:";
        let line = line.trim_ascii_end();
        return line.len() >= GENERIC.len()
            && line[line.len() - GENERIC.len()..].eq_ignore_ascii_case(GENERIC);
    };
    // sudo-rs wraps it, `[sudo: MARKER] Password: `: complete once what
    // follows ends with a colon. sudo 1.9 ends the line with it, whatever
    // came before (a lecture without a newline, say).
    let after = line[at + marker.len()..].trim_ascii();
    match line[..at].ends_with(b"[sudo: ") {
        true => after.ends_with(b":"),
        false => after.is_empty(),
    }
}

/// `line` cut to [`MAX_LINE`] bytes (on a character boundary).
pub fn cut_line(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "mitogen-fakessh-password-1a2b:";

    fn prompt(text: &str) -> bool {
        is_password_prompt(text.as_bytes(), M.as_bytes())
    }

    #[test]
    fn sudo_prints_the_marker_as_it_is() {
        assert!(prompt(M));
        assert!(prompt(&format!("Sorry, try again.\n{M}")));
        assert!(prompt(&format!("warning\r\n{M} ")));
    }

    #[test]
    fn sudo_rs_wraps_the_marker() {
        assert!(prompt(&format!("[sudo: {M}] Password: ")));
        assert!(prompt(&format!(
            "sudo: /etc/sudoers:1:18: unknown setting: 'requiretty'\r\n[sudo: {M}] Password: "
        )));
        // Not yet complete: wait for the rest rather than answer early.
        assert!(!prompt(&format!("[sudo: {M}")));
        assert!(!prompt(&format!("[sudo: {M}] Pass")));
    }

    #[test]
    fn the_marker_followed_by_a_newline_is_not_a_prompt() {
        assert!(!prompt(&format!("{M}\n")));
        assert!(!prompt(&format!("[sudo: {M}] Password: \r\n")));
        assert!(!prompt(&format!("{M} is not a password\n")));
    }

    #[test]
    fn su_and_doas_prompts_end_in_password() {
        assert!(
            prompt(&format!("{}{M}", "x".repeat(5000))),
            "after a lecture"
        );
        assert!(prompt("Password: "));
        assert!(prompt("doas (deploy@web1) password: "));
        assert!(prompt("Sorry.\nPASSWORD:"));
        assert!(!prompt("Enter PIN for token 7: "));
        assert!(!prompt("password: expired\n"));
    }

    #[test]
    fn lines_kept_for_a_message_are_bounded() {
        assert_eq!(cut_line("x".repeat(1000)).len(), MAX_LINE + 3);
        assert_eq!(cut_line("short".into()), "short");
    }
}
