//! The shell-word lexer: variable expansion and word splitting with BuildKit's rules
//! (`$V`, `${V}`, `${V:-w}` and the other modifiers, single and double quotes, the
//! escape character), for the instructions BuildKit expands. It never runs anything:
//! `$(…)` and backquotes are text here, as they are to BuildKit.

use std::collections::HashMap;

/// Why a word could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    pub message: String,
    /// Byte offset in the word where the problem was found.
    pub offset: usize,
}

/// The result of expanding one word: the text (quotes removed, spaces kept), the words it
/// splits into, and the variables it read (for "unused --build-arg" warnings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    pub words: Vec<String>,
    pub used: Vec<String>,
}

/// Variables visible to an expansion, looked up by exact name.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for &[(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// Only the text of `word` expanded (quotes removed): what most instructions need.
/// Words with nothing to expand or unquote are returned as they are, without lexing.
pub fn expand_text(word: &str, env: &dyn Env, escape: char) -> Result<String, ExpandError> {
    if !word.contains(['$', '\'', '"', escape]) {
        return Ok(word.to_string());
    }
    expand(word, env, escape).map(|e| e.text)
}

/// Expand `word` with `env`; `escape` is the Dockerfile's escape character.
pub fn expand(word: &str, env: &dyn Env, escape: char) -> Result<Expanded, ExpandError> {
    lex(word, env, escape, false)
}

/// The body of a COPY or ADD heredoc with an unquoted delimiter: variables expanded, quotes
/// kept as written (they belong to the file, not to the Dockerfile), `\` as the escape
/// whatever the Dockerfile's — BuildKit's raw lexer (`SkipProcessQuotes`).
pub fn expand_heredoc(text: &str, env: &dyn Env) -> Result<String, ExpandError> {
    if !text.contains(['$', '\\']) {
        return Ok(text.to_string());
    }
    lex(text, env, '\\', true).map(|e| e.text)
}

fn lex(
    word: &str,
    env: &dyn Env,
    escape: char,
    keep_quotes: bool,
) -> Result<Expanded, ExpandError> {
    let mut lexer = Lexer {
        text: word,
        pos: 0,
        env,
        escape,
        keep_quotes,
        used: Vec::new(),
        depth: 0,
    };
    let (text, words) = lexer.until(None, false)?;
    Ok(Expanded {
        text,
        words,
        used: lexer.used,
    })
}

struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    env: &'a dyn Env,
    escape: char,
    /// Quotes are text (heredoc bodies).
    keep_quotes: bool,
    used: Vec<String>,
    /// `${…}` inside `${…}`: bounded, so hostile input cannot exhaust the stack.
    depth: usize,
}

/// How deep `${…}` may nest.
const MAX_DEPTH: usize = 32;

/// Words being built: expanded variables split on whitespace, quoted text does not.
#[derive(Default)]
struct Words {
    current: String,
    in_word: bool,
    done: Vec<String>,
}

impl Words {
    /// A character that splits words when it is whitespace.
    fn split_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.current.is_empty() {
                self.done.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.raw_char(c);
        }
    }

    fn raw_char(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    fn raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if let Some(c) = c {
            self.pos += c.len_utf8();
        }
        c
    }

    fn offset(&self) -> usize {
        self.pos
    }

    fn error(&self, message: impl Into<String>) -> ExpandError {
        ExpandError {
            message: message.into(),
            offset: self.offset(),
        }
    }

    /// Read to `stop` (consumed) or the end. `raw_escapes` keeps escape characters in
    /// the text (patterns of `#`, `%` and `/` need them to tell `\*` from `*`).
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut text = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((text, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    text.push_str(&value);
                    value.chars().for_each(|c| words.split_char(c));
                }
                '\'' | '"' if self.keep_quotes => {
                    self.next();
                    text.push(c);
                    words.raw_char(c);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    text.push_str(&value);
                    words.raw_str(&value);
                }
                '"' => {
                    let value = self.double_quoted()?;
                    text.push_str(&value);
                    words.raw_str(&value);
                }
                c if c == self.escape => {
                    self.next();
                    if raw_escapes {
                        text.push(c);
                        words.raw_char(c);
                    }
                    // An escape at the very end is dropped.
                    let Some(escaped) = self.next() else { break };
                    text.push(escaped);
                    words.raw_char(escaped);
                }
                c => {
                    self.next();
                    text.push(c);
                    words.split_char(c);
                }
            }
        }
        match stop {
            Some(stop) => Err(self.error(format!(
                "unexpected end of statement while looking for matching {stop}"
            ))),
            None => Ok((text, words.finish())),
        }
    }

    /// `'…'`: everything literal; there is no escaping a single quote inside.
    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(self.error(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// `"…"`: variables expand; the escape character escapes only `"`, `$` and itself.
    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                            }
                            Some(_) => out.push(c),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
        self.env.get(name).map(str::to_string)
    }

    /// `$NAME`, `${NAME}`, `${NAME<modifier>…}`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.next();
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("substitutions nest more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let result = self.braced();
        self.depth -= 1;
        result
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            None => return Err(self.error("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(self.error("syntax error: bad substitution")),
            _ => {}
        }
        let name = self.name();
        let Some(op) = self.next() else {
            return Err(self.error("syntax error: missing '}'"));
        };
        match op {
            '}' => Ok(self.lookup(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (colon, op) = if op == ':' {
                    match self.next() {
                        Some(o) => (true, o),
                        None => return Err(self.error("syntax error: missing '}'")),
                    }
                } else {
                    (false, op)
                };
                let modifier = if colon {
                    format!(":{op}")
                } else {
                    op.to_string()
                };
                if !matches!(op, '+' | '-' | '?' | '#' | '%') || (colon && matches!(op, '#' | '%'))
                {
                    return Err(
                        self.error(format!("unsupported modifier ({modifier}) in substitution"))
                    );
                }
                let raw = op == '#' || op == '%';
                let word = self.until_brace(raw)?;
                let value = self.lookup(&name);
                let empty = value.as_deref().is_none_or(|v| colon && v.is_empty());
                match op {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(self.error(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) if colon && v.is_empty() => Err(self.error(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) => Ok(v),
                    },
                    _ => {
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let pattern = Pattern::parse(pattern);
                        let value = value.unwrap_or_default();
                        Ok(if op == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.until(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(_) if self.peek().is_none() => {
                        return Err(self.error("syntax error: missing '/' in ${}"));
                    }
                    Err(e) => return Err(e),
                };
                let replacement = self.until_brace(true)?;
                let value = self.lookup(&name).unwrap_or_default();
                Ok(Pattern::parse(&pattern).replace(&value, &replacement, all))
            }
            other => Err(self.error(format!("unsupported modifier ({other}) in substitution"))),
        }
    }

    fn until_brace(&mut self, raw: bool) -> Result<String, ExpandError> {
        match self.until(Some('}'), raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(self.error("syntax error: missing '}'")),
            Err(e) => Err(e),
        }
    }

    /// A variable name: letters, digits and `_`; or digits alone (`$1`); or one special
    /// parameter character (`$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`, `$0`).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }
}

/// A shell pattern of `${V#p}`, `${V%p}` and `${V/p/r}`: `*` any run, `?` any one
/// character, `\x` a literal x (bracket expressions are not supported, as in BuildKit).
#[derive(Debug)]
struct Pattern(Vec<Piece>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Star,
    Any,
    Char(char),
}

impl Pattern {
    fn parse(text: &str) -> Pattern {
        let mut pieces = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '*' => Piece::Star,
                '?' => Piece::Any,
                '\\' => match chars.next() {
                    Some(n) => Piece::Char(n),
                    None => Piece::Char('\\'),
                },
                c => Piece::Char(c),
            });
        }
        Pattern(pieces)
    }

    /// Does the pattern match all of `text`? The classic wildcard walk: on a mismatch,
    /// let the last `*` swallow one more character. O(pattern × text), never exponential.
    fn matches(&self, text: &[char]) -> bool {
        let p = &self.0;
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Piece::Star) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Piece::Any) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Piece::Char(c)) if *c == text[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|x| *x == Piece::Star)
    }

    fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut lengths: Vec<usize> = (0..=chars.len()).collect();
        if longest {
            lengths.reverse();
        }
        for n in lengths {
            if self.matches(&chars[..n]) {
                return chars[n..].iter().collect();
            }
        }
        value.to_string()
    }

    fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !longest {
            starts.reverse();
        }
        for start in starts {
            if self.matches(&chars[start..]) {
                return chars[..start].iter().collect();
            }
        }
        value.to_string()
    }

    /// Replace the leftmost longest match (every non-overlapping one with `all`).
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        // As in Go's regexp: an empty match right after a match does not count.
        let mut last_end = None;
        while i <= chars.len() {
            let wanted = all || !replaced;
            let found = (i..=chars.len())
                .rev()
                .find(|&end| self.matches(&chars[i..end]))
                .filter(|&end| end > i || last_end != Some(i));
            if wanted && let Some(end) = found {
                out.push_str(replacement);
                replaced = true;
                last_end = Some(end);
                if end > i {
                    i = end;
                    continue;
                }
                // An empty match: keep the character and move on.
            }
            if i < chars.len() {
                out.push(chars[i]);
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests;
