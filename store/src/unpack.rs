//! `unpack_layer`: one layer written into a directory, refusing every entry that could land
//! outside it. Two forms: an overlay lower directory (the layer alone, whiteouts as overlayfs
//! writes them) or applied onto the tree of the layers below (whiteouts carried out).
//!
//! Paths are checked by `PathCheck` (the same rules as every layer that enters the store),
//! and then resolved one component at a time from a directory held open, never following a
//! symlink: a symlink an earlier layer left where this one wants a directory is replaced by
//! the directory, as overlayfs would show it, instead of being written through.

mod fsops;
mod meta;
#[cfg(test)]
mod tests;
mod whiteout;

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::{self, BufReader, Read, Write},
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    rc::Rc,
};

use tar::EntryType;

use self::meta::Meta;

use crate::{
    Compression, CountingReader, Digest, DigestReader, Error, PathCheck, Result, WHITEOUT_PREFIX,
    normalise_path, open_tar_stream, tar_check::tar_error,
};

const BLOCK: u64 = 512;
/// Headers are read 512 bytes at a time: read ahead of the decoder in large pieces.
const READ_AHEAD: usize = 256 << 10;
/// File contents move through one reused buffer: memory does not grow with a file's size.
const COPY_BUFFER: usize = 256 << 10;

/// Where an unpacked layer will be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpackMode {
    /// The layer alone, into an empty directory, to be stacked as an overlayfs lower dir:
    /// `.wh.NAME` becomes a 0/0 character device `NAME`, `.wh..wh..opq` the opaque xattr.
    Overlay,
    /// Onto the tree of the layers below it: `.wh.NAME` deletes `NAME`, `.wh..wh..opq`
    /// clears what the directory held before this layer.
    Applied,
}

/// The xattr namespace overlayfs keeps its markers in: `trusted.` when mounted by real
/// root, `user.` when mounted with `userxattr` inside a user namespace (rootless).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayXattrs {
    #[default]
    Trusted,
    User,
}

impl OverlayXattrs {
    /// Every overlayfs xattr starts with this.
    pub fn prefix(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.",
            OverlayXattrs::User => "user.overlay.",
        }
    }

    /// The xattr that makes a directory opaque (its value is `y`).
    pub fn opaque(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.opaque",
            OverlayXattrs::User => "user.overlay.opaque",
        }
    }

    /// Is `name` an overlayfs marker in either namespace? A layer never carries those: they
    /// would steer the overlay (opaque, redirect) instead of describing a file.
    pub fn is_overlay_xattr(name: &str) -> bool {
        name.starts_with(OverlayXattrs::Trusted.prefix())
            || name.starts_with(OverlayXattrs::User.prefix())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct UnpackOptions {
    pub mode: UnpackMode,
    pub overlay_xattrs: OverlayXattrs,
}

impl UnpackOptions {
    pub fn new(mode: UnpackMode) -> UnpackOptions {
        UnpackOptions {
            mode,
            overlay_xattrs: OverlayXattrs::default(),
        }
    }
}

/// What unpacking a layer found.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The digest of the decompressed tar: callers compare it with the diffID they expected.
    pub diff_id: Digest,
    pub compression: Compression,
    pub entries: u64,
}

/// Unpack the layer read from `reader` (plain, gzip or zstd, told by its magic bytes) into
/// `dest`, which must exist. `what` names the layer in errors. On error `dest` holds part
/// of the layer: callers unpack into a temporary directory and rename it when done.
pub fn unpack_layer<R: Read + Send>(
    reader: R,
    dest: &Path,
    options: &UnpackOptions,
    what: &str,
) -> Result<Unpacked> {
    let (compression, tar) = open_tar_stream(reader, what)?;
    let mut hashed = DigestReader::new(tar);
    let entries = unpack_tar(&mut hashed, dest, options, what)?;
    let (diff_id, _) = hashed.finish();
    Ok(Unpacked {
        diff_id,
        compression,
        entries,
    })
}

/// Unpack an uncompressed tar stream, read to its very end; the number of entries.
pub fn unpack_tar<R: Read>(
    reader: R,
    dest: &Path,
    options: &UnpackOptions,
    what: &str,
) -> Result<u64> {
    let mut unpacker = Unpacker::new(dest, options, what)?;
    let mut archive = tar::Archive::new(CountingReader::new(BufReader::with_capacity(
        READ_AHEAD, reader,
    )));
    let mut paths = PathCheck::new(what);
    let mut next_header = 0u64;
    let mut entries = 0u64;
    for entry in archive.entries().map_err(|e| tar_error(what, e))? {
        let mut entry = entry.map_err(|e| tar_error(what, e))?;
        paths.check(&entry)?;
        let size = entry.size();
        unpacker.entry(&mut entry)?;
        next_header = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
        entries += 1;
    }
    let mut inner = archive.into_inner();
    // A complete archive ends with zero blocks; the tar crate stops quietly at EOF instead.
    if inner.count() < next_header + BLOCK {
        return Err(Error::Truncated {
            what: what.to_string(),
            detail: format!("no end-of-archive marker after {entries} entries"),
        });
    }
    // The rest (padding) belongs to the diffID too.
    io::copy(&mut inner, &mut io::sink()).map_err(|e| tar_error(what, e))?;
    unpacker.finish()?;
    Ok(entries)
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

fn os(path: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(path))
}

struct Unpacker<'a> {
    what: &'a str,
    options: &'a UnpackOptions,
    root_path: PathBuf,
    root: Rc<OwnedFd>,
    /// The directory the previous entry went into: tar entries come grouped by directory.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Applied form: every path this layer wrote, and their parents. Whiteouts in this
    /// layer only hide what the layers below hold, never this layer's own entries.
    touched: HashSet<Vec<u8>>,
    /// Directories' mode and mtime, set once everything inside them is written.
    dirs: HashMap<Vec<u8>, (u32, (i64, u32))>,
    buffer: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &Path, options: &'a UnpackOptions, what: &'a str) -> Result<Unpacker<'a>> {
        let root = fsops::open_root(dest)
            .map_err(|e| Error::io(format!("opening {} to unpack {what}", dest.display()), e))?;
        Ok(Unpacker {
            what,
            options,
            root_path: dest.to_path_buf(),
            root: Rc::new(root),
            cached: None,
            touched: HashSet::new(),
            dirs: HashMap::new(),
            buffer: vec![0; COPY_BUFFER],
        })
    }

    fn io_error(&self, path: &[u8], action: &str, e: io::Error) -> Error {
        Error::io(
            format!(
                "unpacking {}: {action} {}",
                self.what,
                self.root_path.join(os(path)).display()
            ),
            e,
        )
    }

    fn unsafe_path(&self, path: &[u8], reason: String) -> Error {
        Error::UnsafePath {
            archive: self.what.to_string(),
            path: String::from_utf8_lossy(path).into_owned(),
            reason,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let path = normalise_path(&entry.path_bytes());
        let kind = entry.header().entry_type();
        let (dir, name) = split(&path);
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&path, dir, name, hidden);
        }
        let meta = Meta::of(entry, self.what)?;
        if path.is_empty() {
            if kind != EntryType::Directory {
                return Err(Error::BadTar {
                    what: self.what.to_string(),
                    detail: format!("the root entry is a {kind:?}, not a directory"),
                });
            }
            let root = Rc::clone(&self.root);
            return self.directory_meta(&path, &root, &meta);
        }
        if self.options.mode == UnpackMode::Applied {
            self.touch(&path);
        }
        let parent = self.parent(dir)?;
        let p = parent.as_fd();
        let fail = |this: &Self, action: &str, e: io::Error| this.io_error(&path, action, e);
        if kind == EntryType::Directory {
            match fsops::kind_at(p, name).map_err(|e| fail(self, "inspecting", e))? {
                Some(libc::S_IFDIR) => {}
                existing => {
                    if existing.is_some() {
                        self.remove(p, &path, name)?;
                    }
                    fsops::mkdir_at(p, name, 0o700).map_err(|e| fail(self, "creating", e))?;
                }
            }
            let fd = fsops::open_dir_at(p, name).map_err(|e| fail(self, "opening", e))?;
            return self.directory_meta(&path, &fd, &meta);
        }
        if fsops::kind_at(p, name)
            .map_err(|e| fail(self, "inspecting", e))?
            .is_some()
        {
            self.remove(p, &path, name)?;
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file =
                    fsops::create_file_at(p, name).map_err(|e| fail(self, "creating", e))?;
                let copied = copy(entry, &mut file, &mut self.buffer)
                    .map_err(|e| Error::from_io(format!("unpacking {}", self.what), e))?;
                if copied != entry.size() && kind != EntryType::GNUSparse {
                    return Err(Error::Truncated {
                        what: self.what.to_string(),
                        detail: format!(
                            "{:?} should hold {} bytes, the archive ends after {copied}",
                            String::from_utf8_lossy(&path),
                            entry.size()
                        ),
                    });
                }
                let fd = file.as_fd();
                // chown clears setuid bits and file capabilities: owner, then mode, then
                // xattrs.
                fsops::fchown(fd, meta.uid, meta.gid).map_err(|e| fail(self, "chown", e))?;
                fsops::fchmod(fd, meta.mode).map_err(|e| fail(self, "chmod", e))?;
                for (k, v) in &meta.xattrs {
                    fsops::fsetxattr(fd, k, v)
                        .map_err(|e| fail(self, &format!("setting xattr {k} on"), e))?;
                }
                fsops::futimes(fd, meta.mtime).map_err(|e| fail(self, "setting times of", e))
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                fsops::symlink_at(&target, p, name).map_err(|e| fail(self, "creating", e))?;
                self.node_meta(p, &path, name, &meta, false)
            }
            EntryType::Link => {
                let target = normalise_path(&entry.link_name_bytes().unwrap_or_default());
                self.hard_link(p, &path, name, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let (major, minor) = (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                let bits = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                fsops::mknod_at(p, name, bits, major, minor)
                    .map_err(|e| fail(self, "creating", e))?;
                self.node_meta(p, &path, name, &meta, true)
            }
            other => Err(Error::BadTar {
                what: self.what.to_string(),
                detail: format!(
                    "{:?} has entry type {other:?}, which a layer cannot hold",
                    String::from_utf8_lossy(&path)
                ),
            }),
        }
    }

    /// Owner and xattrs now; mode and mtime once the directory's contents are in.
    fn directory_meta(&mut self, path: &[u8], fd: &OwnedFd, meta: &Meta) -> Result<()> {
        let fd = fd.as_fd();
        fsops::fchown(fd, meta.uid, meta.gid).map_err(|e| self.io_error(path, "chown", e))?;
        for (k, v) in &meta.xattrs {
            fsops::fsetxattr(fd, k, v)
                .map_err(|e| self.io_error(path, &format!("setting xattr {k} on"), e))?;
        }
        self.dirs.insert(path.to_vec(), (meta.mode, meta.mtime));
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and times of a symlink, device or fifo.
    fn node_meta(
        &self,
        parent: BorrowedFd<'_>,
        path: &[u8],
        name: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        let fail = |action: &str, e| self.io_error(path, action, e);
        fsops::chown_at(parent, name, meta.uid, meta.gid).map_err(|e| fail("chown", e))?;
        if chmod {
            fsops::chmod_at(parent, name, meta.mode).map_err(|e| fail("chmod", e))?;
        }
        if !meta.xattrs.is_empty() {
            // No fd can be opened on a symlink or a device for writing xattrs: name it by
            // the path just walked (its parents are real directories inside the root).
            let full = self.root_path.join(os(path));
            for (k, v) in &meta.xattrs {
                xattr::set(&full, k, v).map_err(|e| fail(&format!("setting xattr {k} on"), e))?;
            }
        }
        fsops::utimes_at(parent, name, meta.mtime).map_err(|e| fail("setting times of", e))
    }

    fn hard_link(
        &mut self,
        parent: BorrowedFd<'_>,
        path: &[u8],
        name: &[u8],
        target: &[u8],
    ) -> Result<()> {
        if target == path {
            return Err(self.unsafe_path(path, "is a hard link to itself".into()));
        }
        let (tdir, tname) = split(target);
        let from = match self.existing_dir(tdir) {
            Ok(Some(fd)) => fd,
            Ok(None) | Err(_) => {
                return Err(self.unsafe_path(
                    path,
                    format!(
                        "is a hard link to {:?}, which is not a file inside the tree",
                        String::from_utf8_lossy(target)
                    ),
                ));
            }
        };
        fsops::link_at(from.as_fd(), tname, parent, name).map_err(|e| {
            self.io_error(
                path,
                &format!("linking to {:?} at", String::from_utf8_lossy(target)),
                e,
            )
        })
    }

    /// Remove what stands at `path` (a directory with its contents).
    fn remove(&mut self, parent: BorrowedFd<'_>, path: &[u8], name: &[u8]) -> Result<()> {
        self.cached = None; // the removed entry may be the cached directory or hold it
        match fsops::unlink_at(parent, name, false) {
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                // remove_dir_all does not follow symlinks inside the directory.
                fs::remove_dir_all(self.root_path.join(os(path)))
                    .map_err(|e| self.io_error(path, "removing", e))
            }
            other => other.map_err(|e| self.io_error(path, "removing", e)),
        }
    }

    /// The directory `dir` (relative to the root), created with its parents when missing;
    /// anything not a directory in the way (a file, a symlink) is replaced, never followed.
    fn parent(&mut self, dir: &[u8]) -> Result<Rc<OwnedFd>> {
        if let Some((path, fd)) = &self.cached
            && path == dir
        {
            return Ok(Rc::clone(fd));
        }
        let fd = self.dir(dir)?;
        self.cached = Some((dir.to_vec(), Rc::clone(&fd)));
        Ok(fd)
    }

    fn dir(&mut self, dir: &[u8]) -> Result<Rc<OwnedFd>> {
        let mut cur = Rc::clone(&self.root);
        let mut walked = Vec::with_capacity(dir.len());
        for component in components(dir) {
            if !walked.is_empty() {
                walked.push(b'/');
            }
            walked.extend_from_slice(component);
            let next = match fsops::open_dir_at(cur.as_fd(), component) {
                Ok(fd) => fd,
                Err(e) => {
                    let missing = e.raw_os_error() == Some(libc::ENOENT);
                    let in_the_way = matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP));
                    if !missing && !in_the_way {
                        return Err(self.io_error(&walked, "opening", e));
                    }
                    if in_the_way {
                        self.remove(cur.as_fd(), &walked.clone(), component)?;
                    }
                    fsops::mkdir_at(cur.as_fd(), component, 0o755)
                        .map_err(|e| self.io_error(&walked, "creating", e))?;
                    let fd = fsops::open_dir_at(cur.as_fd(), component)
                        .map_err(|e| self.io_error(&walked, "opening", e))?;
                    // Implicit parents get docker's 0755 whatever the umask.
                    fsops::fchmod(fd.as_fd(), 0o755)
                        .map_err(|e| self.io_error(&walked, "chmod", e))?;
                    fd
                }
            };
            cur = Rc::new(next);
        }
        Ok(cur)
    }

    /// The directory `dir` if it exists as a real directory all the way down.
    fn existing_dir(&self, dir: &[u8]) -> io::Result<Option<OwnedFd>> {
        let mut cur: Option<OwnedFd> = None;
        for component in components(dir) {
            let base = match &cur {
                Some(fd) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            match fsops::open_dir_at(base, component) {
                Ok(fd) => cur = Some(fd),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        match cur {
            Some(fd) => Ok(Some(fd)),
            None => self.root.try_clone().map(Some),
        }
    }

    /// Directories' modes and mtimes, now that nothing more is written inside them.
    fn finish(mut self) -> Result<()> {
        self.cached = None;
        // Deepest first: a parent's final mode may forbid reaching its children.
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(components(path).count()));
        for (path, (mode, mtime)) in dirs {
            // Gone or replaced by a non-directory since: nothing to set.
            let Ok(Some(fd)) = self.existing_dir(&path) else {
                continue;
            };
            fsops::fchmod(fd.as_fd(), mode).map_err(|e| self.io_error(&path, "chmod", e))?;
            fsops::futimes(fd.as_fd(), mtime)
                .map_err(|e| self.io_error(&path, "setting times of", e))?;
        }
        Ok(())
    }
}

/// Copy through `buffer`; the number of bytes copied.
fn copy(reader: &mut impl Read, writer: &mut impl Write, buffer: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match reader.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                writer.write_all(&buffer[..n])?;
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
