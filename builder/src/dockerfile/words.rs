//! Splitting an instruction's arguments: words on unquoted whitespace (quotes and escapes
//! kept as written; expansion comes later), words on any whitespace (the instructions
//! BuildKit splits that way), leading `--flags`, and JSON arrays.

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

/// How the arguments of an instruction that takes a JSON form read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonForm {
    /// A JSON array of strings: the exec (or list) form.
    Strings(Vec<String>),
    /// A valid JSON array holding something other than a string (`["a", 1]`, `["a",
    /// ["b"]]`): an error in BuildKit, not a fall back to shell form.
    NotStrings,
    /// Not a JSON array (not even valid JSON): the shell or whitespace form.
    No,
}

/// `["a", "b"]` as BuildKit reads it: text that starts with `[` and is a valid JSON array
/// is the JSON form; anything else (`['a']`, `[a, b]`, `["a"] x`) is the shell form.
pub fn json_array(text: &str) -> JsonForm {
    let text = text.trim();
    if !text.starts_with('[') {
        return JsonForm::No;
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return JsonForm::No;
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()
        .map_or(JsonForm::NotStrings, JsonForm::Strings)
}

/// The words of COPY, ADD, VOLUME, EXPOSE and FROM: BuildKit splits them on spaces and
/// tabs only, with no regard for quotes or the escape character (those are read per word
/// when the word is expanded, so `COPY "a b" /d` has the words `"a` and `b"`).
pub fn split_whitespace(text: &str, base: usize) -> Vec<Word> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r');
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (start, is_space(c)) {
            (None, false) => start = Some(i),
            (Some(s), true) => {
                words.push(Word {
                    text: text[s..i].to_string(),
                    offset: base + s,
                });
                start = None;
            }
            _ => {}
        }
    }
    words
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
            JsonForm::Strings(vec!["sh".into(), "-c".into(), "echo \"hi\"\n".into()])
        );
        // A valid array with anything but strings in it is an error, not shell form.
        assert_eq!(json_array(r#"["a", 1]"#), JsonForm::NotStrings);
        assert_eq!(json_array(r#"["echo", ["nested"]]"#), JsonForm::NotStrings);
        assert_eq!(json_array(r#"["a", null]"#), JsonForm::NotStrings);
        // Not valid JSON, or not only an array: shell form.
        assert_eq!(json_array(r#"[a, b]"#), JsonForm::No);
        assert_eq!(json_array(r#"["a"] b"#), JsonForm::No);
        assert_eq!(json_array(r#"["a", 1"#), JsonForm::No);
        assert_eq!(json_array("echo [x]"), JsonForm::No);
        assert_eq!(json_array("[]"), JsonForm::Strings(vec![]));
    }

    #[test]
    fn whitespace_words_ignore_quotes_and_escapes() {
        let w = split_whitespace("\"a b\"  /d", 5);
        assert_eq!(texts(&w), vec!["\"a", "b\"", "/d"]);
        assert_eq!(
            w.iter().map(|w| w.offset).collect::<Vec<_>>(),
            vec![5, 8, 12]
        );
        let w = split_whitespace(r#"\conf\\" /.znc"#, 0);
        assert_eq!(texts(&w), vec![r#"\conf\\""#, "/.znc"]);
        assert_eq!(
            texts(&split_whitespace("a\\ b\t'c d'", 0)),
            vec!["a\\", "b", "'c", "d'"]
        );
        // Only ASCII spaces separate, as in BuildKit; a no-break space is part of a word.
        assert_eq!(
            texts(&split_whitespace("a\u{a0}b c", 0)),
            vec!["a\u{a0}b", "c"]
        );
        assert!(split_whitespace("  ", 0).is_empty());
    }
}
