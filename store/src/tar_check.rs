//! `check_tar` reads a tar stream to its end and refuses what could escape the root it is
//! unpacked into (`..`, absolute paths, links that leave the tree, writes through a
//! symlink; `PathCheck` holds those rules) or that is cut short. `tar_error` says which
//! of those a tar crate error is.

use std::{
    collections::HashSet,
    io::{self, BufReader, Read},
};

use tar::EntryType;

use crate::{CountingReader, Error, Result};

const BLOCK: u64 = 512;
/// The tar crate reads 512-byte headers one at a time; a decoder under it pays its per-call
/// cost on each (inflate's state machine), so read ahead in large pieces.
const READ_AHEAD: usize = 256 << 10;
/// Entry contents are read and dropped through one buffer, reused: `io::copy` into a sink
/// would zero a fresh 8 KiB stack buffer per entry (the tar entry has no `read_buf`), which
/// cost a 20,000-file layer more than hashing it. It is larger than `READ_AHEAD` so that a
/// big file's bytes bypass the read-ahead buffer (`BufReader` passes large reads through)
/// instead of being copied once more.
const SKIP_BUFFER: usize = 1 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TarSummary {
    pub entries: u64,
    /// Bytes of the archive, end-of-archive blocks and padding included.
    pub size: u64,
}

/// Read `reader` to its end, checking every entry. `what` names the archive in errors.
pub fn check_tar<R: Read>(reader: R, what: &str) -> Result<TarSummary> {
    let mut archive = tar::Archive::new(CountingReader::new(BufReader::with_capacity(
        READ_AHEAD, reader,
    )));
    let mut skip = vec![0u8; SKIP_BUFFER];
    let mut paths = PathCheck::new(what);
    let mut next_header = 0u64;
    let mut entries = 0u64;
    for entry in archive.entries().map_err(|e| tar_error(what, e))? {
        let mut entry = entry.map_err(|e| tar_error(what, e))?;
        paths.check(&entry)?;
        let size = entry.size();
        let copied = drain(&mut entry, &mut skip).map_err(|e| tar_error(what, e))?;
        let sparse = entry.header().entry_type() == EntryType::GNUSparse;
        if copied != size && !sparse {
            return Err(Error::Truncated {
                what: what.to_string(),
                detail: format!(
                    "{:?} should hold {size} bytes, the archive ends after {copied}",
                    String::from_utf8_lossy(&entry.path_bytes())
                ),
            });
        }
        next_header = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
        entries += 1;
    }
    let mut inner = archive.into_inner();
    let consumed = inner.count();
    // A complete archive ends with zero blocks; the tar crate stops quietly at EOF instead.
    if consumed < next_header + BLOCK {
        return Err(Error::Truncated {
            what: what.to_string(),
            detail: format!("no end-of-archive marker after {entries} entries ({consumed} bytes)"),
        });
    }
    drain(&mut inner, &mut skip).map_err(|e| tar_error(what, e))?;
    Ok(TarSummary {
        entries,
        size: inner.count(),
    })
}

/// Read `reader` to its end through `buffer`; the number of bytes read.
fn drain(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match reader.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Classify an error out of the tar crate (or out of a reader under it).
pub fn tar_error(what: &str, err: io::Error) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        // A store error from a reader or writer below (a failed write, a digest check):
        // it says what failed better than "reading the archive" would.
        return Error::from_io(String::new(), err);
    }
    let err = Error::from_io(format!("reading {what}"), err);
    let Error::Io { source, .. } = &err else {
        unreachable!("from_io of a plain io::Error is Error::Io")
    };
    let message = source.to_string();
    let truncated = source.kind() == io::ErrorKind::UnexpectedEof
        || message.contains("entire block")
        || message.contains("unexpected EOF")
        || message.contains("unexpected end");
    if truncated {
        Error::Truncated {
            what: what.to_string(),
            detail: message,
        }
    } else if source.kind() == io::ErrorKind::Other || source.kind() == io::ErrorKind::InvalidData {
        Error::BadTar {
            what: what.to_string(),
            detail: message,
        }
    } else {
        err
    }
}

/// The path rules, with the symlinks seen so far in this archive.
pub struct PathCheck {
    what: String,
    symlinks: HashSet<Vec<u8>>,
}

impl PathCheck {
    pub fn new(what: &str) -> PathCheck {
        PathCheck {
            what: what.to_string(),
            symlinks: HashSet::new(),
        }
    }

    pub fn check<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes();
        let path = self.normalise(&raw, "")?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => {}
            EntryType::Symlink | EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                self.check_link(&path, &target, kind == EntryType::Link)?;
            }
            other => {
                return Err(Error::BadTar {
                    what: self.what.clone(),
                    detail: format!(
                        "{:?} has entry type {:?}, which a layer cannot hold",
                        String::from_utf8_lossy(&raw),
                        other
                    ),
                });
            }
        }
        self.check_not_through_symlink(&path, &raw)?;
        if kind == EntryType::Symlink {
            self.symlinks.insert(path);
        } else {
            self.symlinks.remove(&path);
        }
        Ok(())
    }

    /// `./a/b/` -> `a/b`; refuses absolute paths and `..`.
    fn normalise(&self, raw: &[u8], role: &str) -> Result<Vec<u8>> {
        let unsafe_path = |reason: &str| Error::UnsafePath {
            archive: self.what.clone(),
            path: String::from_utf8_lossy(raw).into_owned(),
            reason: format!("{role}{reason}"),
        };
        if raw.starts_with(b"/") {
            return Err(unsafe_path("is absolute"));
        }
        let mut out = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => return Err(unsafe_path("contains '..'")),
                c => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        Ok(out)
    }

    fn check_link(&self, path: &[u8], target: &[u8], hard: bool) -> Result<()> {
        if hard {
            // A hard link names another entry of the archive: same rules as a path.
            let target = self.normalise(target, "hard link target ")?;
            return self.check_not_through_symlink(&target, &target);
        }
        if target.starts_with(b"/") {
            return Ok(()); // resolved inside the container's root at run time
        }
        // Docker refuses relative symlinks that climb out of the tree (its breakout check).
        let mut depth: i64 = path.split(|&b| b == b'/').count() as i64 - 1;
        for component in target.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(Error::UnsafePath {
                    archive: self.what.clone(),
                    path: String::from_utf8_lossy(path).into_owned(),
                    reason: format!(
                        "is a symlink to {:?}, which points outside the tree",
                        String::from_utf8_lossy(target)
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_not_through_symlink(&self, path: &[u8], raw: &[u8]) -> Result<()> {
        for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            let ancestor = &path[..i];
            if self.symlinks.contains(ancestor) {
                return Err(Error::UnsafePath {
                    archive: self.what.clone(),
                    path: String::from_utf8_lossy(raw).into_owned(),
                    reason: format!(
                        "is written through the symlink {:?}",
                        String::from_utf8_lossy(ancestor)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Normalise an archive path the way `PathCheck` does, for callers that already checked it.
pub fn normalise_path(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        if matches!(component, b"" | b"." | b"..") {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(component);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E<'a> {
        File(&'a str),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            match *e {
                E::File(p) => {
                    h.set_size(4);
                    h.set_entry_type(EntryType::Regular);
                    // Write the raw name so "../" and "/" survive (set_path would refuse them).
                    raw_name(&mut h, p);
                    h.set_cksum();
                    b.append(&h, &b"data"[..]).unwrap();
                }
                E::Dir(p) => {
                    h.set_size(0);
                    h.set_entry_type(EntryType::Directory);
                    raw_name(&mut h, p);
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
                E::Sym(p, t) | E::Hard(p, t) => {
                    h.set_size(0);
                    h.set_entry_type(if matches!(e, E::Sym(..)) {
                        EntryType::Symlink
                    } else {
                        EntryType::Link
                    });
                    raw_name(&mut h, p);
                    h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn raw_name(h: &mut tar::Header, p: &str) {
        h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
    }

    #[test]
    fn accepts_an_ordinary_rootfs() {
        let tar = tar_of(&[
            E::Dir("./"),
            E::Dir("./bin/"),
            E::File("./bin/busybox"),
            E::Sym("./bin/sh", "/bin/busybox"),
            E::Sym("./usr/lib/x", "../../lib/x"),
            E::Hard("./bin/ls", "./bin/busybox"),
        ]);
        let summary = check_tar(&tar[..], "t").unwrap();
        assert_eq!(summary.entries, 6);
        assert_eq!(summary.size, tar.len() as u64);
    }

    #[test]
    fn refuses_escapes() {
        for (entries, reason) in [
            (vec![E::File("../etc/passwd")], "contains '..'"),
            (vec![E::File("a/../../x")], "contains '..'"),
            (vec![E::File("/etc/passwd")], "is absolute"),
            (vec![E::Hard("x", "/etc/shadow")], "is absolute"),
            (vec![E::Hard("x", "../shadow")], "contains '..'"),
            (vec![E::Sym("x", "../../etc")], "points outside"),
            (
                vec![E::Sym("evil", "/etc"), E::File("evil/passwd")],
                "through the symlink",
            ),
            (
                vec![E::Sym("./d", "/"), E::Dir("d/x/"), E::File("d/x/y")],
                "through the symlink",
            ),
        ] {
            let tar = tar_of(&entries);
            let err = check_tar(&tar[..], "t").unwrap_err();
            assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{err}");
        }
    }

    #[test]
    fn a_symlink_replaced_by_a_directory_is_fine() {
        let tar = tar_of(&[E::Sym("d", "/x"), E::Dir("d/"), E::File("d/f")]);
        check_tar(&tar[..], "t").unwrap();
    }

    #[test]
    fn refuses_truncated_archives() {
        let tar = tar_of(&[E::File("a"), E::File("b")]);
        // Cut inside the second file's data, and right after it (no end marker).
        for cut in [512 * 3 + 2, 512 * 4] {
            let err = check_tar(&tar[..cut], "t").unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "cut {cut}: {err}");
        }
        // Cut inside a header.
        let err = check_tar(&tar[..512 * 2 + 100], "t").unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }
}
