//! The Dockerfile frontend's parser: our own, because no crate reads the Dockerfiles
//! people write today (heredocs, `# escape`, repeated `--mount`, comments inside
//! continuations). It follows BuildKit's reading: parser directives at the top, logical
//! lines joined at the escape character (not at a doubled one), case-insensitive keywords,
//! flags checked per instruction, JSON exec form with a fall back to shell form when the
//! text is not a JSON array (an array of anything but strings is an error), COPY, ADD,
//! VOLUME, EXPOSE and FROM split on whitespace alone, heredocs for RUN, COPY and ADD.
//! Nothing is expanded here; every error names file:line:column.

mod error;
mod flags;
mod heredoc;
mod instruction;
mod source;
mod words;

pub use error::ParseError;
pub use flags::Flag;
pub use heredoc::Heredoc;
pub use instruction::{ArgDecl, Args, Command, Instruction, Keyword, Pair};

use source::{LogicalLine, Source, is_comment};
use words::{JsonForm, json_array, split_whitespace, split_words, take_flags};

/// A parser directive from the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub value: String,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    pub escape: char,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<String>,
    /// The physical lines, for errors found after parsing (planning, expansion).
    pub lines: Vec<String>,
}

impl Dockerfile {
    /// An error about instructions spanning `lines` (1-based, inclusive), pointing at the
    /// first place `needle` appears in them (or the start of the first line).
    pub fn error_at(
        &self,
        file: &str,
        lines: (usize, usize),
        needle: &str,
        message: impl Into<String>,
    ) -> ParseError {
        let text = |n: usize| self.lines.get(n.wrapping_sub(1)).map_or("", String::as_str);
        let found = (lines.0..=lines.1.max(lines.0)).find_map(|n| {
            let column = if needle.is_empty() {
                None
            } else {
                text(n).find(needle)
            };
            column.map(|c| (n, c))
        });
        let (line, byte) = found.unwrap_or_else(|| {
            let t = text(lines.0);
            (lines.0, t.len() - t.trim_start().len())
        });
        let t = text(line);
        ParseError {
            file: file.to_string(),
            line,
            column: t.get(..byte).map_or(byte, |p| p.chars().count()) + 1,
            text: t.to_string(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "directives": self.directives.iter().map(|d| serde_json::json!({
                "name": d.name, "value": d.value, "line": d.line
            })).collect::<Vec<_>>(),
            "instructions": self.instructions.iter().map(Instruction::to_json).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }
}

/// Parse a Dockerfile; `file` names it in errors and warnings.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let source = Source::new(file, text);
    let (directives, escape) = read_directives(&source)?;
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    let mut number = 1;
    while number <= source.len() {
        let line = source.line(number);
        if line.trim().is_empty() || is_comment(line) {
            number += 1;
            continue;
        }
        let logical = LogicalLine::read(&source, number, escape);
        if logical.text.trim().is_empty() {
            number = logical.end + 1;
            continue;
        }
        if logical.empty_continuation {
            warnings.push(format!(
                "{file}:{}: empty continuation line (BuildKit will make these errors)",
                logical.start
            ));
        }
        let (instruction, last) = parse_instruction(&source, &logical, 0, escape, false)?;
        instructions.push(instruction);
        number = last + 1;
    }
    if instructions.is_empty() {
        return Err(source.error_at(source.len().max(1), 0, "the file holds no instructions"));
    }
    Ok(Dockerfile {
        directives,
        escape,
        instructions,
        warnings,
        lines: (1..=source.len())
            .map(|n| source.line(n).to_string())
            .collect(),
    })
}

/// `# name=value` lines at the very top, until the first line that is not one (an empty
/// line or any other comment ends them too). Unknown names end them, as in BuildKit.
fn read_directives(source: &Source<'_>) -> Result<(Vec<Directive>, char), ParseError> {
    let mut directives: Vec<Directive> = Vec::new();
    let mut escape = '\\';
    for number in 1..=source.len() {
        let line = source.line(number);
        let Some((name, value)) = directive(line) else {
            break;
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        let at = line.find('#').unwrap_or(0);
        if directives.iter().any(|d| d.name == name) {
            return Err(source.error_at(
                number,
                at,
                format!("only one {name} parser directive can be used"),
            ));
        }
        if name == "escape" {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(source.error_at(
                        number,
                        line.rfind(other).unwrap_or(at),
                        format!("invalid escape character {other:?}: expected \\ or `"),
                    ));
                }
            };
        }
        directives.push(Directive {
            name,
            value: value.to_string(),
            line: number,
        });
    }
    Ok((directives, escape))
}

/// `#  name = value  ` → (name, value).
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let (name, value) = rest.split_once('=')?;
    let name = name.trim_end();
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then_some((name, value))
}

/// Parse the instruction that starts at byte `start` of a logical line (0, or after
/// ONBUILD); returns it and the last physical line it used (heredoc bodies count).
fn parse_instruction(
    source: &Source<'_>,
    logical: &LogicalLine,
    start: usize,
    escape: char,
    nested: bool,
) -> Result<(Instruction, usize), ParseError> {
    let text = &logical.text[start..];
    let keyword_len = text.find(char::is_whitespace).unwrap_or(text.len());
    let word = &text[..keyword_len];
    let err = |offset: usize, message: String| source.error_in(logical, offset, message);
    let keyword = Keyword::parse(word).ok_or_else(|| err(start, unknown_instruction(word)))?;
    // Checked before reading further: `ONBUILD ONBUILD …` must not recurse.
    if nested
        && matches!(
            keyword,
            Keyword::Onbuild | Keyword::From | Keyword::Maintainer
        )
    {
        return Err(err(
            start,
            format!("{} isn't allowed as an ONBUILD trigger", keyword.as_str()),
        ));
    }

    let (flag_words, args_at) = take_flags(&text[keyword_len..], start + keyword_len, escape);
    let flags = flags::check(keyword, &flag_words).map_err(|(at, message)| err(at, message))?;
    let raw_args = &logical.text[args_at..];
    let args_offset = args_at + (raw_args.len() - raw_args.trim_start().len());
    let args_text = raw_args.trim();
    let name = keyword.as_str();
    let needs = |what: &str| err(args_offset, format!("{name} needs {what}"));

    // BuildKit reads a valid JSON array that holds anything but strings as an error, not
    // as shell form, in every instruction that takes a JSON form.
    let json = match json_array(args_text) {
        JsonForm::Strings(items) => Some(items),
        JsonForm::NotStrings if keyword.takes_json() => {
            return Err(not_strings(&err, args_offset, name));
        }
        JsonForm::NotStrings | JsonForm::No => None,
    };
    let mut heredocs = Vec::new();
    let mut last = logical.end;
    if keyword.takes_heredocs() && json.is_none() && !nested && args_text.contains("<<") {
        let markers = heredoc::markers(&split_words(args_text, args_offset, escape));
        if !markers.is_empty() {
            let (docs, end) = heredoc::read_bodies(source, logical.end, &markers).map_err(|m| {
                err(
                    m.offset,
                    format!(
                        "heredoc <<{0} is never closed: expected a line holding only {0}",
                        m.name
                    ),
                )
            })?;
            heredocs = docs;
            last = end;
        }
    }

    let words = || split_words(args_text, args_offset, escape);
    // COPY, ADD, VOLUME, EXPOSE and FROM: split on whitespace alone, as BuildKit does;
    // quotes and escapes are read word by word when the words are expanded.
    let plain_words = || split_whitespace(args_text, args_offset);
    let command = |what: &str| -> Result<Command, ParseError> {
        match &json {
            Some(argv) => Ok(Command::Exec(argv.clone())),
            None if args_text.is_empty() => Err(needs(what)),
            None => Ok(Command::Shell(args_text.to_string())),
        }
    };
    let args = match keyword {
        Keyword::From => from_args(&plain_words(), args_offset, &err)?,
        Keyword::Run | Keyword::Cmd | Keyword::Entrypoint => Args::Command(command("a command")?),
        Keyword::Shell => match json {
            Some(argv) if !argv.is_empty() => Args::Shell(argv),
            _ => {
                return Err(needs(
                    "its arguments in JSON form: SHELL [\"executable\", \"parameters\"]",
                ));
            }
        },
        Keyword::Env | Keyword::Label => {
            Args::Pairs(pairs(keyword, args_text, &words(), args_offset, &err)?)
        }
        Keyword::Arg => {
            let decls: Vec<ArgDecl> = words()
                .iter()
                .map(|w| match w.text.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string()), w.offset),
                    None => (w.text.as_str(), None, w.offset),
                })
                .map(|(n, default, at)| {
                    if n.is_empty() {
                        Err(err(at, "ARG needs a name before =".into()))
                    } else {
                        Ok(ArgDecl {
                            name: n.to_string(),
                            default,
                        })
                    }
                })
                .collect::<Result<_, _>>()?;
            if decls.is_empty() {
                return Err(needs("a name: ARG NAME[=default]"));
            }
            Args::Arg(decls)
        }
        Keyword::Copy | Keyword::Add => {
            let (mut items, is_json) = match &json {
                Some(items) => (items.clone(), true),
                None => (plain_words().into_iter().map(|w| w.text).collect(), false),
            };
            if items.len() < 2 {
                return Err(needs(
                    "at least one source and a destination (the last argument)",
                ));
            }
            let destination = items.pop().expect("two or more");
            Args::Paths {
                sources: items,
                destination,
                json: is_json,
            }
        }
        Keyword::Expose | Keyword::Volume => {
            let items: Vec<String> = match (&json, keyword) {
                (Some(items), Keyword::Volume) => items.clone(),
                _ => plain_words().into_iter().map(|w| w.text).collect(),
            };
            if items.is_empty() {
                return Err(needs(if keyword == Keyword::Expose {
                    "a port: EXPOSE 80[/tcp]"
                } else {
                    "a path: VOLUME /data"
                }));
            }
            Args::List(items)
        }
        Keyword::User | Keyword::Workdir | Keyword::Stopsignal | Keyword::Maintainer => {
            if args_text.is_empty() {
                return Err(needs("an argument"));
            }
            Args::Text(args_text.to_string())
        }
        Keyword::Onbuild => {
            if args_text.is_empty() {
                return Err(needs("an instruction to run later: ONBUILD RUN …"));
            }
            let (inner, _) = parse_instruction(source, logical, args_offset, escape, true)?;
            Args::Onbuild(Box::new(inner))
        }
        Keyword::Healthcheck => {
            let all = words();
            let first = all.first().ok_or_else(|| needs("CMD <command> or NONE"))?;
            match first.text.to_ascii_uppercase().as_str() {
                "NONE" if all.len() == 1 && flags.is_empty() => Args::Healthcheck(None),
                "NONE" => {
                    return Err(err(
                        first.offset,
                        "HEALTHCHECK NONE takes no flags or arguments".into(),
                    ));
                }
                "CMD" => {
                    let rest = args_text[first.text.len()..].trim();
                    let cmd = match json_array(rest) {
                        JsonForm::Strings(argv) => Command::Exec(argv),
                        JsonForm::NotStrings => {
                            let at = args_offset + (args_text.len() - rest.len());
                            return Err(not_strings(&err, at, "HEALTHCHECK CMD"));
                        }
                        JsonForm::No if rest.is_empty() => {
                            return Err(err(
                                first.offset,
                                "HEALTHCHECK CMD needs a command".into(),
                            ));
                        }
                        JsonForm::No => Command::Shell(rest.to_string()),
                    };
                    Args::Healthcheck(Some(cmd))
                }
                other => {
                    return Err(err(
                        first.offset,
                        format!("HEALTHCHECK takes CMD <command> or NONE, not {other}"),
                    ));
                }
            }
        }
    };
    Ok((
        Instruction {
            keyword,
            line: logical.start,
            end_line: last,
            flags,
            args,
            heredocs,
            original: text.trim_end().to_string(),
        },
        last,
    ))
}

fn from_args(
    words: &[words::Word],
    offset: usize,
    err: &dyn Fn(usize, String) -> ParseError,
) -> Result<Args, ParseError> {
    match words {
        [image] => Ok(Args::From {
            image: image.text.clone(),
            stage: None,
        }),
        [image, as_word, name] if as_word.text.eq_ignore_ascii_case("as") => {
            let stage = name.text.to_ascii_lowercase();
            let mut chars = stage.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(err(
                    name.offset,
                    format!(
                        "invalid stage name {:?}: it must start with a letter and hold only \
                         letters, digits, '-', '_' and '.'",
                        name.text
                    ),
                ));
            }
            Ok(Args::From {
                image: image.text.clone(),
                stage: Some(stage),
            })
        }
        [] => Err(err(
            offset,
            "FROM needs an image: FROM image [AS name]".into(),
        )),
        [_, second, ..] => Err(err(
            second.offset,
            "FROM takes an image and optionally AS NAME: FROM image [AS name]".into(),
        )),
    }
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `KEY value with spaces`.
fn pairs(
    keyword: Keyword,
    text: &str,
    words: &[words::Word],
    offset: usize,
    err: &dyn Fn(usize, String) -> ParseError,
) -> Result<Vec<Pair>, ParseError> {
    let name = keyword.as_str();
    let Some(first) = words.first() else {
        return Err(err(offset, format!("{name} needs KEY=VALUE")));
    };
    if !first.text.contains('=') {
        let value = text[first.text.len()..].trim();
        if value.is_empty() {
            return Err(err(
                first.offset,
                format!("{name} {0} needs a value: {name} {0}=VALUE", first.text),
            ));
        }
        return Ok(vec![Pair {
            key: first.text.clone(),
            value: value.to_string(),
        }]);
    }
    words
        .iter()
        .map(|w| match w.text.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok(Pair {
                key: key.to_string(),
                value: value.to_string(),
            }),
            _ => Err(err(
                w.offset,
                format!("expected KEY=VALUE in {name}, found {:?}", w.text),
            )),
        })
        .collect()
}

/// A JSON array with something other than strings in it.
fn not_strings(err: &dyn Fn(usize, String) -> ParseError, offset: usize, name: &str) -> ParseError {
    err(
        offset,
        format!(
            "{name} in JSON form: arrays must be comprised of strings only (quote every \
             element, or write the shell form without brackets)"
        ),
    )
}

fn unknown_instruction(word: &str) -> String {
    let upper = word.to_ascii_uppercase();
    let closest = instruction::KEYWORDS
        .iter()
        .map(|k| (distance(&upper, k.as_str()), k.as_str()))
        .min();
    match closest {
        Some((d, k)) if d <= 2 => format!("unknown instruction {word} (did you mean {k}?)"),
        _ => {
            format!("unknown instruction {word}: expected an instruction such as FROM, RUN or COPY")
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
