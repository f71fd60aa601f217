//! `Source`: a Dockerfile's physical lines, and the logical lines they make once
//! continuations are joined and comments inside them dropped, with a map from every
//! position in a logical line back to the physical line and column it came from.

use super::ParseError;

pub struct Source<'a> {
    pub file: &'a str,
    lines: Vec<&'a str>,
}

/// One instruction's text: physical lines joined at their continuation characters.
#[derive(Debug)]
pub struct LogicalLine {
    pub text: String,
    /// 1-based physical lines where it starts and ends.
    pub start: usize,
    pub end: usize,
    /// (offset in `text`, physical line, byte column in that line) per joined piece.
    pieces: Vec<(usize, usize, usize)>,
    pub empty_continuation: bool,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Source<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        let lines = lines
            .into_iter()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        Source { file, lines }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// A 1-based physical line.
    pub fn line(&self, number: usize) -> &'a str {
        self.lines.get(number - 1).copied().unwrap_or("")
    }

    /// An error at a 1-based line and byte column of that line.
    pub fn error_at(
        &self,
        line: usize,
        byte_column: usize,
        message: impl Into<String>,
    ) -> ParseError {
        let text = self.line(line);
        let byte_column = byte_column.min(text.len());
        let column = text
            .get(..byte_column)
            .map_or(byte_column, |prefix| prefix.chars().count())
            + 1;
        ParseError {
            file: self.file.to_string(),
            line,
            column,
            text: text.to_string(),
            message: message.into(),
        }
    }

    /// An error at a byte offset of a logical line.
    pub fn error_in(
        &self,
        logical: &LogicalLine,
        offset: usize,
        message: impl Into<String>,
    ) -> ParseError {
        let (line, column) = logical.position(offset);
        self.error_at(line, column, message)
    }
}

pub fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Does the line end in the escape character (spaces and tabs after it allowed)? Then it
/// continues on the next; the text before the escape character is returned. BuildKit's
/// rule: the escape character must not itself follow an escape character, so a line
/// ending in `\\` (or two backticks) ends the instruction and keeps both characters. A
/// line holding only the escape character continues.
pub fn continuation(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let before = trimmed.strip_suffix(escape)?;
    (!before.ends_with(escape)).then_some(before)
}

impl LogicalLine {
    /// Join physical lines from `start` (1-based) while they end in `escape`. Comment
    /// lines inside are dropped, empty ones skipped (BuildKit warns about those).
    pub fn read(source: &Source<'_>, start: usize, escape: char) -> LogicalLine {
        let first = source.line(start);
        let indent = first.len() - first.trim_start().len();
        let mut logical = LogicalLine {
            text: String::new(),
            start,
            end: start,
            pieces: Vec::new(),
            empty_continuation: false,
        };
        let mut number = start;
        let mut line = &first[indent..];
        let mut column = indent;
        loop {
            let (piece, more) = match continuation(line, escape) {
                Some(before) => (before, true),
                None => (line, false),
            };
            logical.pieces.push((logical.text.len(), number, column));
            logical.text.push_str(piece);
            logical.end = number;
            if !more {
                break;
            }
            // The next line that is neither a comment nor empty continues this one.
            loop {
                number += 1;
                if number > source.len() {
                    return logical;
                }
                let next = source.line(number);
                if is_comment(next) {
                    continue;
                }
                if next.trim().is_empty() {
                    logical.empty_continuation = true;
                    continue;
                }
                line = next;
                column = 0;
                break;
            }
        }
        logical
    }

    /// The physical line and byte column of a byte offset in `text`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|(start, _, _)| *start <= offset)
            .copied()
            .unwrap_or((0, self.start, 0));
        (piece.1, piece.2 + (offset - piece.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_skipping_comments_and_blank_lines() {
        let text = "RUN apt-get update \\\n  # a comment\n\n    && apt-get install -y x \\   \n  && echo done\nCMD x\n";
        let source = Source::new("Dockerfile", text);
        let l = LogicalLine::read(&source, 1, '\\');
        assert_eq!(
            l.text,
            "RUN apt-get update     && apt-get install -y x   && echo done"
        );
        assert_eq!((l.start, l.end), (1, 5));
        assert!(l.empty_continuation);
        // "&& echo" sits on line 5, column 2 (0-based bytes).
        let offset = l.text.rfind("&& echo").unwrap();
        assert_eq!(l.position(offset), (5, 2));
    }

    #[test]
    fn backtick_escape_and_crlf() {
        let source = Source::new("Dockerfile", "RUN dir c:\\ `\r\n  && echo\r\n");
        let l = LogicalLine::read(&source, 1, '`');
        assert_eq!(l.text, "RUN dir c:\\   && echo");
        assert_eq!(continuation("a\\", '`'), None);
    }

    #[test]
    fn a_doubled_escape_ends_the_line() {
        assert_eq!(continuation("ENV C trailing\\\\", '\\'), None);
        assert_eq!(continuation("ENV C trailing\\\\  \t", '\\'), None);
        assert_eq!(continuation("a\\\\\\", '\\'), None);
        assert_eq!(continuation("a``", '`'), None);
        assert_eq!(continuation("a\\\\`", '`'), Some("a\\\\"));
        assert_eq!(continuation("a \\", '\\'), Some("a "));
        assert_eq!(continuation("\\ ", '\\'), Some(""));
        let source = Source::new("Dockerfile", "ENV C trailing\\\\\nRUN x\n");
        let l = LogicalLine::read(&source, 1, '\\');
        assert_eq!((l.text.as_str(), l.end), ("ENV C trailing\\\\", 1));
    }
}
