//! ADD's local archives: a file that is a tar, plain or compressed with gzip, bzip2, xz or
//! zstd (recognised by content, never by name, as BuildKit's isArchivePath), is extracted
//! into the destination instead of copied. Entries keep their mode, owner (or `--chown`'s)
//! and mtime; no path may leave the destination (`..` that climbs out and hard links out
//! of it are refused; absolute names are taken as relative to it), and writes go through
//! `Writer`, so a symlink in the archive or the image cannot redirect one. Whiteouts are
//! not applied: they are ordinary files in an archive.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use filetime::FileTime;
use tar::EntryType;

use super::{
    FilesError,
    write::{Content, Meta, Writer},
};

/// Does the file hold a tar archive (perhaps compressed) with at least one entry?
pub(crate) fn is_archive(path: &Path) -> bool {
    let Ok(reader) = open(path) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    matches!(archive.entries().map(|mut e| e.next()), Ok(Some(Ok(_))))
}

fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut r = BufReader::with_capacity(256 << 10, file);
    let magic = r.fill_buf()?.to_vec();
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => {
            Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::Decoder::with_buffer(r)?),
        _ => Box::new(r),
    })
}

/// Extract the archive at `src` into `dest` (segments below the root; it exists).
pub(crate) fn extract(
    w: &mut Writer,
    src: &Path,
    dest: &[String],
    chown: Option<(u32, u32)>,
) -> Result<(), FilesError> {
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bad = |why: String| FilesError::Archive {
        archive: name.clone(),
        why,
    };
    let reader = open(src).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&path).into_owned();
        let rel = inside(&path).ok_or_else(|| bad(format!("{shown:?} leaves the destination")))?;
        if rel.is_empty() {
            continue; // "./": the destination itself
        }
        let header = entry.header();
        let (uid, gid) = match chown {
            Some(ids) => ids,
            // An empty numeric field reads as 0, as Go's archive/tar reads it.
            None => (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            ),
        };
        let meta = Meta {
            mode: header.mode().unwrap_or(0) & 0o7777,
            uid,
            gid,
            mtime: Some(FileTime::from_unix_time(
                header.mtime().unwrap_or(0) as i64,
                0,
            )),
        };
        let target = [dest, &rel].concat();
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .ok_or_else(|| bad(format!("{shown:?}: a link without a target")))
        };
        match header.entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                w.put(&target, Content::File(&mut entry), meta, false)?;
            }
            EntryType::Directory => {
                w.put(&target, Content::Dir, meta, false)?;
            }
            EntryType::Symlink => {
                let to = PathBuf::from(String::from_utf8_lossy(&link()?).into_owned());
                w.put(&target, Content::Symlink(to), meta, false)?;
            }
            EntryType::Link => {
                let to = link()?;
                let to = inside(&to).ok_or_else(|| {
                    bad(format!(
                        "{shown:?}: hard link target leaves the destination"
                    ))
                })?;
                w.put(
                    &target,
                    Content::HardLink([dest, &to].concat()),
                    meta,
                    false,
                )?;
            }
            kind @ (EntryType::Char | EntryType::Block | EntryType::Fifo) => {
                let node = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let rdev = libc::makedev(major, minor);
                w.put(&target, Content::Node(node, rdev), meta, false)?;
            }
            _ => {} // pax and GNU headers are read by the tar crate; others carry nothing
        }
    }
    Ok(())
}

/// An archive path as segments below the destination; None if `..` climbs out.
fn inside(path: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(path);
    let mut out: Vec<String> = Vec::new();
    for s in text.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s.to_string()),
        }
    }
    Some(out)
}
