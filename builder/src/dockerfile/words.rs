//! Splitting an instruction's arguments: words on unquoted whitespace (quotes and escapes
//! kept as written; expansion comes later), leading `--flags`, and JSON arrays.

/// A word of a logical line and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub offset: usize,
}

/// Split `text` (which starts at byte `base` of its logical line) on whitespace outside
/// quotes; the escape character protects the character after it. Nothing is removed.
pub fn split_words(text: &str, base: usize, escape: char) -> Vec<Word> {
    let mut words = Vec::new();
    let mut rest = text;
    let mut offset = base;
    loop {
        let skipped = rest.len() - rest.trim_start().len();
        rest = &rest[skipped..];
        offset += skipped;
        if rest.is_empty() {
            return words;
        }
        let len = word_len(rest, escape);
        words.push(Word {
            text: rest[..len].to_string(),
            offset,
        });
        rest = &rest[len..];
        offset += len;
    }
}

/// Bytes of the word at the start of `text`.
fn word_len(text: &str, escape: char) -> usize {
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (_, c) if c == escape && quote != Some('\'') => {
                chars.next();
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return i,
            _ => {}
        }
    }
    text.len()
}

/// The `--name[=value]` words that open `text`, and the byte offset (from `base`) where
/// the arguments after them begin. A bare `--` ends the flags and is dropped.
pub fn take_flags(text: &str, base: usize, escape: char) -> (Vec<Word>, usize) {
    let mut flags = Vec::new();
    let mut rest = text;
    let mut offset = base;
    loop {
        let skipped = rest.len() - rest.trim_start().len();
        if !rest[skipped..].starts_with("--") {
            return (flags, offset);
        }
        rest = &rest[skipped..];
        offset += skipped;
        let len = word_len(rest, escape);
        let word = &rest[..len];
        rest = &rest[len..];
        if word == "--" {
            return (flags, offset + len);
        }
        flags.push(Word {
            text: word.to_string(),
            offset,
        });
        offset += len;
    }
}

/// `["a", "b"]` as docker reads it: a JSON array of strings, else nothing (and the
/// instruction is in shell form).
pub fn json_array(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if !text.starts_with('[') || !text.ends_with(']') {
        return None;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let w = split_words(r#"a="b c" 'd e'  f\ g h"#, 10, '\\');
        assert_eq!(texts(&w), vec![r#"a="b c""#, "'d e'", r"f\ g", "h"]);
        assert_eq!(w[1].offset, 18);
        let w = split_words("a` b c", 0, '`');
        assert_eq!(texts(&w), vec!["a` b", "c"]);
    }

    #[test]
    fn flags_stop_at_the_first_other_word_or_double_dash() {
        let (flags, rest) = take_flags(
            r#"--mount=type=secret,id="a b" --network=none echo --x"#,
            4,
            '\\',
        );
        assert_eq!(
            texts(&flags),
            vec![r#"--mount=type=secret,id="a b""#, "--network=none"]
        );
        assert_eq!(rest, 4 + 43);
        let (flags, rest) = take_flags("--link -- --not-a-flag", 0, '\\');
        assert_eq!(texts(&flags), vec!["--link"]);
        assert_eq!(&"--link -- --not-a-flag"[rest..], " --not-a-flag");
    }

    #[test]
    fn json_arrays_of_strings_only() {
        assert_eq!(
            json_array(r#" ["sh", "-c", "echo \"hi\"\n"] "#),
            Some(vec!["sh".into(), "-c".into(), "echo \"hi\"\n".into()])
        );
        assert_eq!(json_array(r#"["a", 1]"#), None);
        assert_eq!(json_array(r#"[a, b]"#), None);
        assert_eq!(json_array("echo [x]"), None);
        assert_eq!(json_array("[]"), Some(vec![]));
    }
}
