//! The one line reader: every command and start-up read journals and logs through it, so
//! line numbers and byte offsets mean the same everywhere (in `replay`'s notes, in
//! `journal verify`'s findings and in start-up's refusal of a damaged journal).

use std::io::{self, BufRead};

/// One line as read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// 1-based, blank lines counted.
    pub number: u64,
    /// The byte offset of the line's start.
    pub offset: u64,
    /// The line without its '\n'.
    pub bytes: &'a [u8],
    /// Whether the line ended with '\n' (a last line without one may be a torn write).
    pub complete: bool,
}

impl Line<'_> {
    /// The line's length on disk, its '\n' included.
    pub(crate) fn len_on_disk(&self) -> u64 {
        self.bytes.len() as u64 + u64::from(self.complete)
    }

    /// Whether the line holds nothing but white space.
    pub(crate) fn is_blank(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }
}

/// Reads lines from any buffered input, one reused buffer, memory bounded by the longest
/// line. A lending iterator: each line borrows the reader until the next call.
pub(crate) struct LineReader<R> {
    input: R,
    buf: Vec<u8>,
    number: u64,
    offset: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R) -> Self {
        LineReader {
            input,
            buf: Vec::with_capacity(4096),
            number: 0,
            offset: 0,
        }
    }

    /// The next line, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let n = self.input.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += n as u64;
        self.number += 1;
        let complete = self.buf.last() == Some(&b'\n');
        let bytes = if complete {
            &self.buf[..n - 1]
        } else {
            &self.buf[..]
        };
        Ok(Some(Line {
            number: self.number,
            offset,
            bytes,
            complete,
        }))
    }

    /// Lines read so far, blank ones included.
    pub(crate) fn lines_read(&self) -> u64 {
        self.number
    }

    /// Bytes read so far: the offset after the last line.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_offsets_and_a_last_line_without_newline() {
        let mut r = LineReader::new(&b"a\n\n  \nbcd\nef"[..]);
        let mut seen = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            seen.push((
                l.number,
                l.offset,
                String::from_utf8(l.bytes.to_vec()).unwrap(),
                l.complete,
                l.is_blank(),
                l.len_on_disk(),
            ));
        }
        assert_eq!(
            seen,
            [
                (1, 0, "a".into(), true, false, 2),
                (2, 2, "".into(), true, true, 1),
                (3, 3, "  ".into(), true, true, 3),
                (4, 6, "bcd".into(), true, false, 4),
                (5, 10, "ef".into(), false, false, 2),
            ]
        );
        assert_eq!((r.lines_read(), r.bytes_read()), (5, 12));
    }
}
