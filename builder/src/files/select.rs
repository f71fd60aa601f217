//! Which source files a transfer takes: patterns resolved against the source root
//! (Go `filepath.Match` wildcards, one path segment each, as BuildKit), symlinks in a
//! named source followed inside the root, and directories walked with `.dockerignore`
//! and `--exclude` applied. Digest and apply share this walk, so the cache input covers
//! exactly the files a transfer writes, and nothing else is read.

use std::{
    fs::{self, Metadata},
    os::unix::fs::MetadataExt,
    path::PathBuf,
};

use super::{
    FilesError, Source, Transfer,
    paths::{self, clean},
    transfer::is_url,
};
use crate::context::{Dockerignore, glob};

/// A source root as a transfer sees it.
pub(crate) struct View<'a> {
    pub root: &'a std::path::Path,
    ignore: Option<&'a Dockerignore>,
    /// Files keep their owner (another stage's tree) rather than becoming 0:0 (context).
    pub keep_owner: bool,
    pub place: &'static str,
}

impl<'a> View<'a> {
    pub fn new(source: &Source<'a>) -> View<'a> {
        match *source {
            Source::Context { dir, ignore } => View {
                root: dir,
                ignore: Some(ignore),
                keep_owner: false,
                place: "the build context",
            },
            Source::Tree(root) => View {
                root,
                ignore: None,
                keep_owner: true,
                place: "the source stage or image",
            },
        }
    }

    fn visible(&self, rel: &str) -> bool {
        rel.is_empty() || self.ignore.is_none_or(|i| !i.is_excluded(rel))
    }

    /// May something inside this (hidden) directory be visible again?
    fn may_descend(&self, rel: &str) -> bool {
        self.ignore.is_none_or(|i| i.may_reinclude_under(rel))
    }
}

/// One thing a source pattern matched.
pub(crate) struct Match {
    /// The pattern, for messages.
    pub pattern: String,
    /// Where it is in the source root after following symlinks.
    pub rel: Vec<String>,
    /// The name it was matched by (a symlink's own name, not its target's).
    pub name: String,
    pub meta: Metadata,
    /// With `--parents`: its path below the pivot, and the directories above it there.
    pub parents: Option<(Vec<String>, Vec<Dir>)>,
    /// The path `--exclude` patterns see for things inside it.
    pub exclude_base: Vec<String>,
}

/// A directory between a `--parents` pivot and a match.
pub(crate) struct Dir {
    pub rel: Vec<String>,
    /// Its path below the pivot.
    pub below: Vec<String>,
    pub meta: Metadata,
}

impl Match {
    pub fn host(&self, view: &View) -> PathBuf {
        paths::host(view.root, &self.rel)
    }
}

/// Every match of every source pattern, in order. A pattern without wildcards must
/// match; a wildcard may match nothing (BuildKit's AllowEmptyWildcard).
pub(crate) fn select(
    view: &View,
    t: &Transfer,
    excludes: &Exclude,
) -> Result<Vec<Match>, FilesError> {
    let mut out = Vec::new();
    for pattern in &t.sources {
        if is_url(pattern) {
            continue; // fetched, not selected (remote.rs)
        }
        let (pivot, pattern_path) = match (t.parents, pattern.split_once("/./")) {
            (true, Some((pivot, rest))) => (clean(pivot), rest.to_string()),
            (true, None) => (Vec::new(), pattern.clone()),
            (false, _) => (Vec::new(), pattern.clone()),
        };
        let segments: Vec<String> = pivot.iter().cloned().chain(clean(&pattern_path)).collect();
        let wild = segments.iter().position(|s| has_wildcards(s));
        let not_found = || FilesError::NotFound {
            pattern: pattern.clone(),
            place: view.place,
        };
        let candidates: Vec<Vec<String>> = match wild {
            None => vec![segments.clone()],
            Some(at) => {
                let base = paths::resolve(view.root, &segments[..at], true)?;
                if !base.exists() || !view.visible(&base.segments.join("/")) {
                    return Err(not_found());
                }
                let mut found = Vec::new();
                expand(
                    view,
                    &base.segments,
                    &segments[..at],
                    &segments[at..],
                    &mut found,
                )?;
                found
            }
        };
        for candidate in candidates {
            // Named sources are followed inside the root (BuildKit's FollowSymlinks);
            // --parents copies what it matched as it is.
            let resolved = paths::resolve(view.root, &candidate, !t.parents)?;
            let rel = resolved.segments.join("/");
            if !resolved.exists() || !view.visible(&rel) {
                if wild.is_some() && !resolved.exists() {
                    continue; // a dangling link among wildcard matches
                }
                return Err(not_found());
            }
            let host = paths::host(view.root, &resolved.segments);
            let meta = fs::symlink_metadata(&host).map_err(|e| FilesError::io(&host, e))?;
            let name = candidate.last().cloned().unwrap_or_default();
            // A match is itself subject to --exclude when a wildcard or --parents chose it
            // (BuildKit's docs: `COPY --exclude=*.txt hom* /mydir/`).
            let own = match (t.parents, wild) {
                (true, _) => Some(&candidate[pivot.len()..]),
                (false, Some(at)) => Some(&candidate[at..]),
                (false, None) => None,
            };
            if own.is_some_and(|own| !own.is_empty() && excludes.hides(own)) {
                continue;
            }
            let parents = t.parents.then(|| {
                let below: Vec<String> = candidate[pivot.len()..].to_vec();
                let mut dirs = Vec::new();
                for n in pivot.len() + 1..candidate.len() {
                    let below = candidate[pivot.len()..n].to_vec();
                    // Looked up inside the root: a symlinked ancestor cannot lead out.
                    let Ok(found) = paths::resolve(view.root, &candidate[..n], true) else {
                        continue;
                    };
                    let host = paths::host(view.root, &found.segments);
                    if let Ok(meta) = fs::symlink_metadata(host) {
                        dirs.push(Dir {
                            rel: found.segments,
                            below,
                            meta,
                        });
                    }
                }
                (below, dirs)
            });
            let exclude_base = if t.parents {
                candidate[pivot.len()..].to_vec()
            } else {
                Vec::new()
            };
            out.push(Match {
                pattern: pattern.clone(),
                rel: resolved.segments,
                name,
                meta,
                parents,
                exclude_base,
            });
        }
    }
    Ok(out)
}

/// Paths below `dir` matching the wildcard segments, in name order. Like Go's
/// filepath.Walk, symlinks to directories are not entered.
/// `dir` is resolved (it is listed); `shown` is the same path as the pattern wrote it,
/// which the matches extend (`--parents` and destination names go by it).
fn expand(
    view: &View,
    dir: &[String],
    shown: &[String],
    pattern: &[String],
    out: &mut Vec<Vec<String>>,
) -> Result<(), FilesError> {
    let Some((first, rest)) = pattern.split_first() else {
        return Ok(());
    };
    let host = paths::host(view.root, dir);
    for name in sorted_names(&host)? {
        if !glob(first, &name) {
            continue;
        }
        let path = [dir, std::slice::from_ref(&name)].concat();
        let written = [shown, std::slice::from_ref(&name)].concat();
        let rel = path.join("/");
        if rest.is_empty() {
            if view.visible(&rel) {
                out.push(written);
            }
        } else if (view.visible(&rel) || view.may_descend(&rel))
            && fs::symlink_metadata(paths::host(view.root, &path)).is_ok_and(|m| m.is_dir())
        {
            expand(view, &path, &written, rest, out)?;
        }
    }
    Ok(())
}

pub(crate) fn sorted_names(dir: &std::path::Path) -> Result<Vec<String>, FilesError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| FilesError::io(dir, e))? {
        let entry = entry.map_err(|e| FilesError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// `*`, `?` or `[` not escaped by `\`.
pub(crate) fn has_wildcards(segment: &str) -> bool {
    let mut escaped = false;
    for c in segment.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// `--exclude` patterns, with .dockerignore's syntax (`**`, `!`), matched against paths
/// relative to what was matched.
pub(crate) struct Exclude(Option<Dockerignore>);

impl Exclude {
    pub fn new(patterns: &[String]) -> Exclude {
        Exclude((!patterns.is_empty()).then(|| Dockerignore::parse(&patterns.join("\n"))))
    }

    fn hides(&self, rel: &[String]) -> bool {
        self.0
            .as_ref()
            .is_some_and(|p| p.is_excluded(&rel.join("/")))
    }

    fn may_descend(&self, rel: &[String]) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.may_reinclude_under(&rel.join("/")))
    }
}

/// One entry below a matched directory.
pub(crate) struct Entry<'m> {
    /// Path in the source root.
    pub rel: &'m [String],
    /// Path below the matched directory.
    pub below: &'m [String],
    pub meta: &'m Metadata,
}

/// Walk the directory a match names, calling `visit` for every entry the transfer takes,
/// a directory before what it holds, names in order. A directory hidden by the rules but
/// holding something re-included is visited just before the first thing it holds.
pub(crate) fn walk(
    view: &View,
    m: &Match,
    excludes: &Exclude,
    visit: &mut dyn FnMut(Entry<'_>) -> Result<(), FilesError>,
) -> Result<(), FilesError> {
    let mut state = Walk {
        view,
        excludes,
        rel: m.rel.clone(),
        below: Vec::new(),
        exclude_rel: m.exclude_base.clone(),
        pending: Vec::new(),
    };
    state.dir(visit)
}

struct Walk<'v, 'a> {
    view: &'v View<'a>,
    excludes: &'v Exclude,
    rel: Vec<String>,
    below: Vec<String>,
    exclude_rel: Vec<String>,
    /// Hidden directories entered but not yet visited: (depth, metadata, visited).
    pending: Vec<(usize, Metadata, bool)>,
}

impl Walk<'_, '_> {
    fn dir(
        &mut self,
        visit: &mut dyn FnMut(Entry<'_>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        let host = paths::host(self.view.root, &self.rel);
        for name in sorted_names(&host)? {
            let path = host.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|e| FilesError::io(&path, e))?;
            if meta.file_type().is_socket() {
                continue; // no archive or layer holds sockets
            }
            self.rel.push(name.clone());
            self.below.push(name.clone());
            self.exclude_rel.push(name);
            let rel = self.rel.join("/");
            let hidden = !self.view.visible(&rel) || self.excludes.hides(&self.exclude_rel);
            let result = if meta.is_dir() {
                if !hidden {
                    self.flush(visit)?;
                    self.emit(&meta, visit)?;
                    self.dir(visit)
                } else if self.view.may_descend(&rel)
                    && self.excludes.may_descend(&self.exclude_rel)
                {
                    self.pending.push((self.below.len(), meta, false));
                    let r = self.dir(visit);
                    self.pending.pop();
                    r
                } else {
                    Ok(())
                }
            } else if !hidden {
                self.flush(visit).and_then(|()| self.emit(&meta, visit))
            } else {
                Ok(())
            };
            self.rel.pop();
            self.below.pop();
            self.exclude_rel.pop();
            result?;
        }
        Ok(())
    }

    fn emit(
        &self,
        meta: &Metadata,
        visit: &mut dyn FnMut(Entry<'_>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        visit(Entry {
            rel: &self.rel,
            below: &self.below,
            meta,
        })
    }

    /// Visit the hidden directories above the entry about to be visited.
    fn flush(
        &mut self,
        visit: &mut dyn FnMut(Entry<'_>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        let base = self.rel.len() - self.below.len();
        for (depth, meta, visited) in self.pending.iter_mut() {
            if *visited {
                continue;
            }
            *visited = true;
            let (rel, below) = (&self.rel[..base + *depth], &self.below[..*depth]);
            visit(Entry { rel, below, meta })?;
        }
        Ok(())
    }
}

/// The (device, inode) of a file that has other names, to keep hard links together.
pub(crate) fn link_key(meta: &Metadata) -> Option<(u64, u64)> {
    (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()))
}

use std::os::unix::fs::FileTypeExt as _;
