//! Text from the other side of a trust boundary, made safe to print.
//!
//! A remote host controls what its shell, its rc files, its sudo and our
//! agent there write. When such text reaches the operator's terminal inside
//! one of *our* diagnostics (an `ssh: ...` error, a hop's last stderr lines,
//! a dead message's reason), an escape sequence in it could set the window
//! title, clear the screen or draw a fake password prompt. OpenSSH passes
//! such text through `strnvis(VIS_SAFE|VIS_OCTAL)`; [`sanitize`] is the same
//! idea, a little stricter: tab and newline stay, every other control
//! character (C0, DEL and the C1 range, carriage return and backspace
//! included) and every byte that is not UTF-8 becomes a `\ooo` octal
//! escape, and printable UTF-8 (accents, CJK) stays readable.
//!
//! A remote command's own stdout and stderr are never passed through here:
//! they stay byte-exact, as with OpenSSH.

/// `bytes` as printable text: see the module documentation.
pub fn sanitize(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\n' || c == '\t' || !c.is_control() {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    octal(&mut out, b);
                }
            }
        }
        for &b in chunk.invalid() {
            octal(&mut out, b);
        }
    }
    out
}

/// [`sanitize`] for one line: a newline is escaped too, so the text cannot
/// start a line of its own that looks like ours.
pub fn sanitize_line(bytes: &[u8]) -> String {
    sanitize(bytes).replace('\n', "\\012")
}

fn octal(out: &mut String, b: u8) {
    out.push_str(&format!("\\{b:03o}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_escaped() {
        // Set the window title, clear the screen, then a fake prompt.
        let hostile = b"\x1b]0;owned\x07\x1b[2J\rPassword: ";
        let safe = sanitize(hostile);
        assert_eq!(safe, "\\033]0;owned\\007\\033[2J\\015Password: ");
        assert!(!safe.bytes().any(|b| b < 0x20 || b == 0x7f));
    }

    #[test]
    fn c1_controls_and_invalid_utf8_are_escaped() {
        // U+009B is CSI on terminals that take C1 controls.
        assert_eq!(sanitize("a\u{9b}2Jb".as_bytes()), "a\\302\\2332Jb");
        assert_eq!(sanitize(b"\xff\xfe ok"), "\\377\\376 ok");
        assert_eq!(sanitize(b"del\x7f"), "del\\177");
    }

    #[test]
    fn readable_text_stays() {
        let text = "sudo: 3 incorrect password attempts\n\tgrüße, 你好";
        assert_eq!(sanitize(text.as_bytes()), text);
    }

    #[test]
    fn one_line_stays_one_line() {
        assert_eq!(
            sanitize_line(b"one\nmitogen-fakessh: two"),
            "one\\012mitogen-fakessh: two"
        );
    }
}
