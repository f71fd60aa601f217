//! `Transfer`: one COPY or ADD after planning (variables expanded), its flags checked the
//! way BuildKit's Dockerfile frontend checks them, heredoc sources split from paths.

use super::{Chmod, FilesError};
use crate::dockerfile::{Args, Instruction, Keyword};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// ADD (archives are extracted, URLs fetched) rather than COPY.
    pub add: bool,
    /// Paths or wildcard patterns (relative to the source root; `..` cannot leave it) and,
    /// for ADD, URLs; in the order written, heredoc markers removed.
    pub sources: Vec<String>,
    /// Heredoc sources: (file name, content as the planner left it).
    pub heredocs: Vec<(String, String)>,
    /// As written (after expansion); relative to WORKDIR unless absolute.
    pub destination: String,
    /// `--from`: the executor reads from that stage or image (a `Source::Tree`).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    /// `--link`: recorded only; the executor applies the transfer into an empty root.
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// `ADD --checksum=sha256:…` (URL sources only).
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
}

impl Transfer {
    pub fn from_instruction(i: &Instruction) -> Result<Transfer, FilesError> {
        let add = match i.keyword {
            Keyword::Add => true,
            Keyword::Copy => false,
            k => {
                return Err(FilesError::Invalid(format!(
                    "{} is not COPY or ADD",
                    k.as_str()
                )));
            }
        };
        let keyword = i.keyword.as_str();
        let Args::Paths {
            sources: words,
            destination,
            ..
        } = &i.args
        else {
            return Err(FilesError::Invalid(format!(
                "{keyword} needs sources and a destination"
            )));
        };
        let value = |name: &str| i.flag(name).and_then(|f| f.value.clone());
        let boolean = |name: &str| {
            i.flag(name)
                .is_some_and(|f| f.value.as_deref() != Some("false"))
        };
        let mut sources = Vec::new();
        let mut heredocs = Vec::new();
        for word in words {
            match heredoc_name(word).and_then(|n| i.heredocs.iter().find(|h| h.name == n)) {
                Some(doc) => heredocs.push((doc.name.clone(), doc.content.clone())),
                None => sources.push(word.clone()),
            }
        }
        let chmod = value("chmod").map(|c| Chmod::parse(&c)).transpose()?;
        let checksum = value("checksum");
        if let Some(sum) = &checksum {
            // BuildKit's rules, in its words.
            if sources.len() != 1 || !heredocs.is_empty() {
                return Err(FilesError::Invalid(
                    "checksum can't be specified for multiple sources".into(),
                ));
            }
            if !is_url(&sources[0]) {
                return Err(FilesError::Invalid(
                    "checksum requires HTTP(S) or Git sources".into(),
                ));
            }
            super::remote::parse_checksum(sum)?;
        }
        if !add && let Some(url) = sources.iter().find(|s| is_url(s)) {
            return Err(FilesError::Invalid(format!(
                "source can't be a URL for COPY: {url}"
            )));
        }
        if let Some(url) = sources.iter().find(|s| is_git_url(s)) {
            return Err(FilesError::Git {
                keyword,
                url: url.clone(),
            });
        }
        Ok(Transfer {
            add,
            sources,
            heredocs,
            destination: destination.clone(),
            from: value("from"),
            chown: value("chown"),
            chmod,
            link: boolean("link"),
            parents: boolean("parents"),
            exclude: i
                .flags
                .iter()
                .filter(|f| f.name == "exclude")
                .filter_map(|f| f.value.clone())
                .collect(),
            checksum,
            keep_git_dir: boolean("keep-git-dir"),
        })
    }

    /// The http(s) sources (ADD only), in order.
    pub(crate) fn urls(&self) -> impl Iterator<Item = &str> {
        self.sources
            .iter()
            .map(String::as_str)
            .filter(|s| is_url(s))
    }

    pub(crate) fn keyword(&self) -> &'static str {
        if self.add { "ADD" } else { "COPY" }
    }

    /// The fields that change what the transfer writes, for the cache input.
    pub(crate) fn key_fields(&self) -> String {
        format!(
            "{}\0{:?}\0{:?}\0{}\0{:?}\0{:?}\0{}\0{}\0{:?}\0{:?}\0{}",
            self.keyword(),
            self.sources,
            self.heredocs,
            self.destination,
            self.chown,
            self.chmod.as_ref().map(|c| &c.text),
            self.link,
            self.parents,
            self.exclude,
            self.checksum,
            self.keep_git_dir,
        )
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`: the heredoc a source word names.
fn heredoc_name(word: &str) -> Option<&str> {
    let rest = word.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    Some(rest.trim_matches(|c| c == '"' || c == '\''))
}

pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// An http(s) URL BuildKit would clone rather than download: a path ending in `.git`.
fn is_git_url(source: &str) -> bool {
    if !is_url(source) {
        return false;
    }
    let path = source.split(['#', '?']).next().unwrap_or(source);
    path.trim_end_matches('/').ends_with(".git")
}
