//! Recognising a password prompt on a privilege hop's pty, and keeping what
//! the program printed within bounds.

/// At most this much of the pty's output is kept while no line ends; a
/// prompt is short, and what a program prints is never trusted to end.
pub const MAX_PENDING: usize = 8 << 10;
/// A line kept for a message is cut to this many bytes.
pub const MAX_LINE: usize = 240;

/// Whether `pending`, the pty's output not yet judged, ends with a
/// password prompt. `marker` is the unique prompt sudo was given with
/// `-p`:
/// - sudo 1.9 prints it as it is, at the start of a line;
/// - sudo-rs wraps it: `[sudo: MARKER] Password: `, so the line is
///   complete once what follows the marker ends with a colon;
///
/// the marker with a newline after it is not a prompt (an echo, a message
/// quoting it). Without the marker (su, doas), a line ending in
/// `password:` is the prompt.
pub fn is_password_prompt(pending: &str, marker: &str) -> bool {
    let Some(at) = pending.rfind(marker) else {
        return pending
            .trim_end()
            .to_ascii_lowercase()
            .ends_with("password:");
    };
    let after = &pending[at + marker.len()..];
    if after.contains('\n') {
        return false;
    }
    let line_start = pending[..at].rfind('\n').map_or(0, |n| n + 1);
    let before = &pending[line_start..at];
    match before.trim().is_empty() {
        true => after.trim().is_empty(),
        false => after.trim_end().ends_with(':'),
    }
}

/// Keep at most [`MAX_PENDING`] bytes of `pending`, its end.
pub fn bound_pending(pending: &mut String) {
    if pending.len() <= MAX_PENDING {
        return;
    }
    let mut cut = pending.len() - MAX_PENDING;
    while !pending.is_char_boundary(cut) {
        cut += 1;
    }
    pending.drain(..cut);
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

    #[test]
    fn sudo_prints_the_marker_as_it_is() {
        assert!(is_password_prompt(M, M));
        assert!(is_password_prompt(&format!("Sorry, try again.\n{M}"), M));
        assert!(is_password_prompt(&format!("warning\r\n{M} "), M));
    }

    #[test]
    fn sudo_rs_wraps_the_marker() {
        let wrapped = format!("[sudo: {M}] Password: ");
        assert!(is_password_prompt(&wrapped, M));
        let after_warning = format!(
            "sudo: /etc/sudoers:1:18: unknown setting: 'requiretty'\n[sudo: {M}] Password: "
        );
        assert!(is_password_prompt(&after_warning, M));
        // Not yet complete: wait for the rest rather than answer early.
        assert!(!is_password_prompt(&format!("[sudo: {M}"), M));
        assert!(!is_password_prompt(&format!("[sudo: {M}] Pass"), M));
    }

    #[test]
    fn the_marker_followed_by_a_newline_is_not_a_prompt() {
        assert!(!is_password_prompt(&format!("{M}\n"), M));
        assert!(!is_password_prompt(&format!("[sudo: {M}] Password: \n"), M));
        // A marker-less "password:" does not count once sudo printed the
        // marker (it may be the end of our own prompt's echo).
        assert!(!is_password_prompt(&format!("{M}\nold password:"), M));
    }

    #[test]
    fn su_and_doas_prompts_end_in_password() {
        assert!(is_password_prompt("Password: ", M));
        assert!(is_password_prompt("doas (deploy@web1) password: ", M));
        assert!(!is_password_prompt("Enter PIN for token 7: ", M));
        assert!(!is_password_prompt("password: expired\n", M));
    }

    #[test]
    fn pending_output_is_bounded() {
        let mut pending = "é".repeat(MAX_PENDING);
        bound_pending(&mut pending);
        assert!(pending.len() <= MAX_PENDING);
        assert!(pending.chars().all(|c| c == 'é'));
        assert_eq!(cut_line("x".repeat(1000)).len(), MAX_LINE + 3);
        assert_eq!(cut_line("short".into()), "short");
    }
}
