//! Paths inside a root, the way a chroot sees them: `..` stops at the root and a symlink,
//! absolute or relative, is resolved against the root, never against the host. Used for
//! both sides of a transfer, so neither a context symlink nor an image symlink can make
//! kiln read or write outside its tree.

use std::{
    collections::VecDeque,
    fs, io,
    path::{Path, PathBuf},
};

use super::FilesError;

/// Linux's limit on symlinks followed while resolving one path.
const MAX_LINKS: usize = 40;

/// `/`-separated path to segments: empty and `.` segments dropped, `..` removes the
/// segment before it and never climbs above the root.
pub(crate) fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    push_clean(&mut out, path.split('/'));
    out
}

fn push_clean<'a>(out: &mut Vec<String>, segments: impl IntoIterator<Item = &'a str>) {
    for s in segments {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
}

/// `root` joined with segments.
pub(crate) fn host(root: &Path, segments: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(segments);
    p
}

/// `/a/b` for messages.
pub(crate) fn display(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

/// A path resolved inside a root: `segments[..existing]` exist and none of them is a
/// symlink (except the last, when it was not to be followed); the rest do not exist.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub segments: Vec<String>,
    pub existing: usize,
}

impl Resolved {
    pub fn exists(&self) -> bool {
        self.existing == self.segments.len()
    }
}

/// Resolve `path` inside `root`, following every symlink on the way inside the root, and
/// the last component too when `follow_last`.
pub(crate) fn resolve(
    root: &Path,
    path: &[String],
    follow_last: bool,
) -> Result<Resolved, FilesError> {
    let mut queue: VecDeque<String> = path.iter().cloned().collect();
    let mut out: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(segment) = queue.pop_front() {
        match segment.as_str() {
            "" | "." => continue,
            ".." => {
                out.pop();
                continue;
            }
            _ => out.push(segment),
        }
        let here = host(root, &out);
        let meta = match fs::symlink_metadata(&here) {
            Ok(m) => m,
            Err(e) if is_missing(&e) => {
                // Nothing below a missing component exists: the rest is lexical.
                let mut existing = out.len() - 1;
                for s in queue {
                    match s.as_str() {
                        "" | "." => {}
                        ".." => {
                            out.pop();
                            existing = existing.min(out.len());
                        }
                        _ => out.push(s),
                    }
                }
                return Ok(Resolved {
                    segments: out,
                    existing,
                });
            }
            Err(e) => return Err(FilesError::io(display(&out), e)),
        };
        if meta.file_type().is_symlink() && (!queue.is_empty() || follow_last) {
            links += 1;
            if links > MAX_LINKS {
                return Err(FilesError::Loop {
                    path: display(path),
                });
            }
            let target = fs::read_link(&here).map_err(|e| FilesError::io(display(&out), e))?;
            out.pop();
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                out.clear();
            }
            for s in target.split('/').rev() {
                queue.push_front(s.to_string());
            }
        }
    }
    let existing = out.len();
    Ok(Resolved {
        segments: out,
        existing,
    })
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn dot_dot_and_links_stay_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../..", root.join("a/up")).unwrap();
        symlink("b", root.join("a/rel")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let r = |p: &str, follow| {
            let r = resolve(root, &clean(p), follow).unwrap();
            (r.segments.join("/"), r.exists())
        };
        assert_eq!(r("../../a/b", true), ("a/b".into(), true));
        assert_eq!(r("abs/passwd", true), ("etc/passwd".into(), false));
        assert_eq!(r("a/up/a/rel", true), ("a/b".into(), true));
        assert_eq!(r("a/up", false), ("a/up".into(), true));
        assert_eq!(r("a/up", true), ("".into(), true));
        assert_eq!(r("a/missing/../x/y", true), ("a/x/y".into(), false));
        // Unclean input (as a symlink target gives it) cannot claim a missing path exists.
        let raw = ["a", "missing", "..", "..", "z"].map(String::from);
        let gone = resolve(root, &raw, true).unwrap();
        assert_eq!((gone.segments.join("/"), gone.existing), ("z".into(), 0));
        assert!(matches!(
            resolve(root, &clean("loop1"), true),
            Err(FilesError::Loop { .. })
        ));
        assert_eq!(clean("/../a/./b//c/.."), vec!["a", "b"]);
    }
}
