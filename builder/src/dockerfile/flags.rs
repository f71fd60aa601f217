//! The flags each instruction takes (`RUN --mount=…`, `COPY --from=…`), and checking the
//! ones written against them: unknown, missing values, repeats and booleans.

use super::{Keyword, words::Word};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--name=value`, once.
    Value,
    /// `--name=value`, as often as wanted (`RUN --mount`, `COPY --exclude`).
    Repeated,
    /// `--name`, or `--name=true|false`.
    Bool,
}

/// The flags an instruction accepts, as BuildKit's Dockerfile frontend 1.x defines them.
pub fn allowed(keyword: Keyword) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match keyword {
        Keyword::From => &[("platform", Value)],
        Keyword::Run => &[("mount", Repeated), ("network", Value), ("security", Value)],
        Keyword::Copy => &[
            ("from", Value),
            ("chown", Value),
            ("chmod", Value),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Repeated),
        ],
        Keyword::Add => &[
            ("chown", Value),
            ("chmod", Value),
            ("link", Bool),
            ("checksum", Value),
            ("keep-git-dir", Bool),
            ("exclude", Repeated),
        ],
        Keyword::Healthcheck => &[
            ("interval", Value),
            ("timeout", Value),
            ("start-period", Value),
            ("start-interval", Value),
            ("retries", Value),
        ],
        _ => &[],
    }
}

/// A flag as written, checked: `value` is `None` for a bare boolean flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
    /// Byte offset in the logical line, for errors found later (a bad mount option).
    pub offset: usize,
}

/// Check `words` against what `keyword` accepts; an error carries the offending word's
/// offset and a message saying what was expected.
pub fn check(keyword: Keyword, words: &[Word]) -> Result<Vec<Flag>, (usize, String)> {
    let allowed = allowed(keyword);
    let mut flags: Vec<Flag> = Vec::new();
    for word in words {
        let body = word.text.trim_start_matches('-');
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some((_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            let expected = if allowed.is_empty() {
                format!("{} takes no flags", keyword.as_str())
            } else {
                format!(
                    "expected one of {}",
                    allowed
                        .iter()
                        .map(|(n, _)| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err((
                word.offset,
                format!(
                    "unknown flag --{name} for {} ({expected})",
                    keyword.as_str()
                ),
            ));
        };
        match (kind, value) {
            (Kind::Bool, Some(v)) if v != "true" && v != "false" => {
                return Err((
                    word.offset,
                    format!("--{name} takes true or false, not {v:?}"),
                ));
            }
            (Kind::Value | Kind::Repeated, None) => {
                return Err((
                    word.offset,
                    format!("--{name} needs a value: --{name}=VALUE"),
                ));
            }
            (Kind::Value | Kind::Repeated, Some("")) => {
                return Err((word.offset, format!("--{name} has an empty value")));
            }
            _ => {}
        }
        if *kind != Kind::Repeated && flags.iter().any(|f| f.name == name) {
            return Err((
                word.offset,
                format!("--{name} is given twice (only --mount and --exclude repeat)"),
            ));
        }
        flags.push(Flag {
            name: name.to_string(),
            value: value.map(str::to_string),
            offset: word.offset,
        });
    }
    Ok(flags)
}
