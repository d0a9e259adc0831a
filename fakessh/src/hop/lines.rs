//! Splitting text a remote writes (an ssh channel's stderr, a privilege
//! hop's pty) into lines, in bounded memory and time.
//!
//! A remote may write any number of bytes without a newline. The partial
//! line keeps only its last [`LINE_LIMIT`] bytes (the end is what a prompt
//! is recognised by), and only the bytes that arrive are scanned for a
//! newline: the cost of a chunk is its length plus at most `LINE_LIMIT`.

/// The longest line kept, in bytes, as the bootstrap's reader keeps.
pub const LINE_LIMIT: usize = 4096;

/// One complete line, without its newline.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's last bytes, at most [`LINE_LIMIT`].
    pub bytes: &'a [u8],
    /// How many bytes before those were dropped.
    pub cut: u64,
}

impl Line<'_> {
    /// The line as text (lossy UTF-8, trailing whitespace and CR removed),
    /// saying how much of its beginning was cut.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(self.bytes);
        let text = text.trim_end();
        match self.cut {
            0 => text.to_string(),
            cut => format!("[{cut} bytes cut] {text}"),
        }
    }
}

/// Replaces a secret in a byte stream, even one split across chunks: the
/// bytes that may begin it are held back until the next chunk shows
/// whether they do.
#[derive(Debug)]
pub struct Redactor {
    secret: Vec<u8>,
    with: Vec<u8>,
    held: Vec<u8>,
}

impl Redactor {
    pub fn new(secret: &[u8], with: &[u8]) -> Self {
        Redactor {
            secret: secret.to_vec(),
            with: with.to_vec(),
            held: Vec::new(),
        }
    }

    /// `data` with every occurrence of the secret replaced, less the bytes
    /// held back (at most the secret's length less one).
    pub fn pass(&mut self, data: &[u8]) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.held);
        input.extend_from_slice(data);
        if self.secret.is_empty() {
            return input;
        }
        let mut out = Vec::with_capacity(input.len());
        let mut rest = &input[..];
        while let Some(at) = memchr::memmem::find(rest, &self.secret) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&self.with);
            rest = &rest[at + self.secret.len()..];
        }
        // The longest end of `rest` that begins the secret.
        let window = rest.len().saturating_sub(self.secret.len() - 1);
        let hold = memchr::memchr_iter(self.secret[0], &rest[window..])
            .map(|i| window + i)
            .find(|&i| self.secret.starts_with(&rest[i..]))
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest[..hold]);
        self.held = rest[hold..].to_vec();
        out
    }

    /// The bytes held back: the beginning of the secret, or not.
    pub fn held(&self) -> &[u8] {
        &self.held
    }

    /// What is held back, at the end of the stream (it was not the secret).
    pub fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// The bytes of a line not yet ended by a newline.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the current line dropped from its front.
    cut: u64,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `data`; `each` gets every line it completes, in order.
    pub fn feed(&mut self, data: &[u8], mut each: impl FnMut(Line<'_>)) {
        let mut rest = data;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            self.append(&rest[..pos]);
            each(Line {
                bytes: &self.partial,
                cut: self.cut,
            });
            self.clear();
            rest = &rest[pos + 1..];
        }
        self.append(rest);
    }

    /// The line so far (its last [`LINE_LIMIT`] bytes at most).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// The line so far as a complete line (at the end of the stream), if
    /// it holds anything; the splitter is empty afterwards.
    pub fn finish(&mut self, each: impl FnOnce(Line<'_>)) {
        if !self.partial.is_empty() || self.cut > 0 {
            each(Line {
                bytes: &self.partial,
                cut: self.cut,
            });
        }
        self.clear();
    }

    /// Forget the line so far.
    pub fn clear(&mut self) {
        self.partial.clear();
        self.cut = 0;
    }

    fn append(&mut self, bytes: &[u8]) {
        if bytes.len() >= LINE_LIMIT {
            self.cut += (self.partial.len() + bytes.len() - LINE_LIMIT) as u64;
            self.partial.clear();
            self.partial
                .extend_from_slice(&bytes[bytes.len() - LINE_LIMIT..]);
            return;
        }
        self.partial.extend_from_slice(bytes);
        self.keep_limit();
    }

    fn keep_limit(&mut self) {
        let over = self.partial.len().saturating_sub(LINE_LIMIT);
        if over > 0 {
            self.partial.drain(..over);
            self.cut += over as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(splitter: &mut LineSplitter, data: &[u8]) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        splitter.feed(data, |l| out.push((l.bytes.to_vec(), l.cut)));
        out
    }

    #[test]
    fn lines_across_chunks() {
        let mut s = LineSplitter::new();
        assert_eq!(lines(&mut s, b"ab"), []);
        assert_eq!(
            lines(&mut s, b"c\nd\n\ne"),
            [(b"abc".to_vec(), 0), (b"d".to_vec(), 0), (b"".to_vec(), 0)]
        );
        assert_eq!(s.partial(), b"e");
        let mut last = Vec::new();
        s.finish(|l| last.push(l.text()));
        assert_eq!(last, ["e"]);
        s.finish(|l| panic!("nothing left, got {l:?}"));
    }

    #[test]
    fn a_flood_without_newline_keeps_its_last_bytes_only() {
        let mut s = LineSplitter::new();
        let chunk = vec![b'x'; 32 * 1024];
        for _ in 0..1024 {
            assert_eq!(lines(&mut s, &chunk), []);
            assert!(s.partial().len() <= LINE_LIMIT);
        }
        for _ in 0..10_000 {
            assert_eq!(lines(&mut s, b"y"), []);
        }
        let got = lines(&mut s, b"end\nnext");
        assert_eq!(got.len(), 1);
        let (bytes, cut) = &got[0];
        assert_eq!(bytes.len(), LINE_LIMIT);
        assert!(bytes.ends_with(b"yyyend"));
        assert_eq!(*cut as usize, 32 * 1024 * 1024 + 10_000 + 3 - LINE_LIMIT);
        assert!(
            Line { bytes, cut: *cut }
                .text()
                .starts_with(&format!("[{cut} bytes cut] "))
        );
        assert_eq!(s.partial(), b"next");
    }

    #[test]
    fn a_secret_split_across_chunks_is_redacted() {
        let mut r = Redactor::new(b"secret-pw", b"<password>");
        let mut out = Vec::new();
        for chunk in [
            &b"echo: sec"[..],
            b"ret-pw and secret-",
            b"pw; s",
            b"ecre",
            b"x s",
        ] {
            out.extend(r.pass(chunk));
        }
        assert_eq!(r.held(), b"s");
        out.extend(r.flush());
        assert_eq!(out, b"echo: <password> and <password>; secrex s");
    }

    #[test]
    fn nothing_to_redact_passes_unchanged_and_holds_nothing() {
        let mut r = Redactor::new(b"pw", b"<password>");
        assert_eq!(r.pass(b"a prompt: "), b"a prompt: ");
        assert_eq!(r.held(), b"");
        let mut none = Redactor::new(b"", b"<password>");
        assert_eq!(none.pass(b"x"), b"x");
    }
}
