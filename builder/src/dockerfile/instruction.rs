//! `Instruction`: one Dockerfile instruction as written — keyword, flags, arguments in
//! the shape that instruction takes, heredocs — before any variable is expanded.

use super::{Flag, Heredoc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Keyword {
    From,
    Run,
    Cmd,
    Label,
    Maintainer,
    Expose,
    Env,
    Add,
    Copy,
    Entrypoint,
    Volume,
    User,
    Workdir,
    Arg,
    Onbuild,
    Stopsignal,
    Healthcheck,
    Shell,
}

pub const KEYWORDS: [Keyword; 18] = [
    Keyword::From,
    Keyword::Run,
    Keyword::Cmd,
    Keyword::Label,
    Keyword::Maintainer,
    Keyword::Expose,
    Keyword::Env,
    Keyword::Add,
    Keyword::Copy,
    Keyword::Entrypoint,
    Keyword::Volume,
    Keyword::User,
    Keyword::Workdir,
    Keyword::Arg,
    Keyword::Onbuild,
    Keyword::Stopsignal,
    Keyword::Healthcheck,
    Keyword::Shell,
];

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Run => "RUN",
            Keyword::Cmd => "CMD",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Expose => "EXPOSE",
            Keyword::Env => "ENV",
            Keyword::Add => "ADD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Volume => "VOLUME",
            Keyword::User => "USER",
            Keyword::Workdir => "WORKDIR",
            Keyword::Arg => "ARG",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Shell => "SHELL",
        }
    }

    /// Keywords are case-insensitive.
    pub fn parse(word: &str) -> Option<Keyword> {
        KEYWORDS
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    /// Instructions that read a JSON array form (exec form, or a list).
    pub fn takes_json(self) -> bool {
        matches!(
            self,
            Keyword::Run
                | Keyword::Cmd
                | Keyword::Entrypoint
                | Keyword::Shell
                | Keyword::Copy
                | Keyword::Add
                | Keyword::Volume
        )
    }

    /// Instructions whose lines may open heredocs.
    pub fn takes_heredocs(self) -> bool {
        matches!(self, Keyword::Run | Keyword::Copy | Keyword::Add)
    }
}

/// RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD: an argv (`["a", "b"]`) or a shell string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// `key=value` of ENV and LABEL, as written (quotes are removed at expansion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
}

/// `ARG name` or `ARG name=default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Args {
    From {
        image: String,
        stage: Option<String>,
    },
    Command(Command),
    Shell(Vec<String>),
    Pairs(Vec<Pair>),
    Arg(Vec<ArgDecl>),
    /// COPY and ADD: sources then destination; `json` when written as an array.
    Paths {
        sources: Vec<String>,
        destination: String,
        json: bool,
    },
    /// EXPOSE and VOLUME.
    List(Vec<String>),
    /// USER, WORKDIR, STOPSIGNAL, MAINTAINER.
    Text(String),
    Onbuild(Box<Instruction>),
    /// HEALTHCHECK NONE is `None`.
    Healthcheck(Option<Command>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: Keyword,
    /// 1-based physical lines, heredoc bodies included in `end_line`.
    pub line: usize,
    pub end_line: usize,
    pub flags: Vec<Flag>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The logical line as written (continuations joined).
    pub original: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// One line: keyword, flags and arguments as they stand (expanded, after planning).
    pub fn summary(&self) -> String {
        let i = self;
        let mut out = i.keyword.as_str().to_string();
        for f in &i.flags {
            match &f.value {
                Some(v) => out.push_str(&format!(" --{}={v}", f.name)),
                None => out.push_str(&format!(" --{}", f.name)),
            }
        }
        let command = |c: &Command| match c {
            Command::Exec(argv) => format!(" {}", serde_json::to_string(argv).unwrap_or_default()),
            Command::Shell(s) => format!(" {s}"),
        };
        out.push_str(&match &i.args {
            Args::From { image, stage } => format!(
                " {image}{}",
                stage
                    .as_ref()
                    .map(|s| format!(" AS {s}"))
                    .unwrap_or_default()
            ),
            Args::Command(c) => command(c),
            Args::Shell(argv) => format!(" {}", serde_json::to_string(argv).unwrap_or_default()),
            Args::Pairs(pairs) => pairs
                .iter()
                .map(|p| format!(" {}={:?}", p.key, p.value))
                .collect(),
            Args::Arg(decls) => decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!(" {}={v:?}", d.name),
                    None => format!(" {}", d.name),
                })
                .collect(),
            Args::Paths {
                sources,
                destination,
                ..
            } => format!(" {} {destination}", sources.join(" ")),
            Args::List(items) => format!(" {}", items.join(" ")),
            Args::Text(t) => format!(" {t}"),
            Args::Onbuild(inner) => format!(" {}", inner.summary()),
            Args::Healthcheck(None) => " NONE".into(),
            Args::Healthcheck(Some(c)) => format!(" CMD{}", command(c)),
        });
        out
    }

    /// The syntax tree as `kiln dockerfile parse --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let mut out = serde_json::Map::new();
        out.insert("instruction".into(), json!(self.keyword.as_str()));
        out.insert("line".into(), json!(self.line));
        if self.end_line != self.line {
            out.insert("end_line".into(), json!(self.end_line));
        }
        if !self.flags.is_empty() {
            let flags: Vec<Value> = self
                .flags
                .iter()
                .map(|f| json!({"name": f.name, "value": f.value}))
                .collect();
            out.insert("flags".into(), Value::Array(flags));
        }
        let command = |c: &Command| match c {
            Command::Exec(argv) => json!({"exec": argv}),
            Command::Shell(s) => json!({"shell": s}),
        };
        let fields = match &self.args {
            Args::From { image, stage } => json!({"image": image, "stage": stage}),
            Args::Command(c) => command(c),
            Args::Shell(argv) => json!({"shell": argv}),
            Args::Pairs(pairs) => json!({
                "pairs": pairs.iter().map(|p| json!({"key": p.key, "value": p.value})).collect::<Vec<_>>()
            }),
            Args::Arg(args) => json!({
                "args": args.iter().map(|a| json!({"name": a.name, "default": a.default})).collect::<Vec<_>>()
            }),
            Args::Paths {
                sources,
                destination,
                json,
            } => json!({"sources": sources, "destination": destination, "json": json}),
            Args::List(items) => json!({"values": items}),
            Args::Text(text) => json!({"value": text}),
            Args::Onbuild(inner) => json!({"trigger": inner.to_json()}),
            Args::Healthcheck(None) => json!({"none": true}),
            Args::Healthcheck(Some(c)) => json!({"cmd": command(c)}),
        };
        if let Value::Object(fields) = fields {
            out.extend(fields);
        }
        if !self.heredocs.is_empty() {
            let docs: Vec<Value> = self
                .heredocs
                .iter()
                .map(|h| {
                    json!({"name": h.name, "content": h.content, "expand": h.expand,
                           "strip_tabs": h.strip_tabs, "fd": h.fd})
                })
                .collect();
            out.insert("heredocs".into(), Value::Array(docs));
        }
        Value::Object(out)
    }
}
