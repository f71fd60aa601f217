//! `copy_tree`: a faithful copy of a directory tree (hard links, xattrs, devices, fifos,
//! modes with setuid, owners, mtimes to the nanosecond), for the copying fallback and for
//! growing a flattened chain from a shorter one. File contents move in the kernel
//! (`io::copy` between files uses copy_file_range), never whole through memory.

use std::{
    collections::HashMap,
    fs::{self, File},
    io,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, lchown, symlink},
    path::{Path, PathBuf},
};

use super::{
    error::{Context, Result},
    sys,
};

/// Copy the tree at `from` to `to`, which must not exist yet.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut links = HashMap::new();
    let meta = fs::symlink_metadata(from).ctx(|| format!("inspecting {}", from.display()))?;
    copy_dir(from, to, &meta, &mut links)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    meta: &fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    fs::create_dir(to).ctx(|| format!("creating {}", to.display()))?;
    lchown(to, Some(meta.uid()), Some(meta.gid())).ctx(|| format!("chown {}", to.display()))?;
    copy_xattrs(from, to)?;
    for entry in fs::read_dir(from).ctx(|| format!("reading {}", from.display()))? {
        let entry = entry.ctx(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let m = fs::symlink_metadata(&src).ctx(|| format!("inspecting {}", src.display()))?;
        copy_entry(&src, &dst, &m, links)?;
    }
    // Mode and times once the contents are in (writing them changed the mtime).
    finish(to, meta, true)
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    meta: &fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_dir() {
        return copy_dir(src, dst, meta, links);
    }
    if ft.is_socket() {
        return Ok(()); // a layer cannot hold sockets
    }
    if ft.is_file() && meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = links.get(&key) {
            return fs::hard_link(first, dst)
                .ctx(|| format!("linking {} to {}", dst.display(), first.display()));
        }
        links.insert(key, dst.to_path_buf());
    }
    let created = if ft.is_file() {
        let mut input = File::open(src).ctx(|| format!("opening {}", src.display()))?;
        let mut output = File::options()
            .write(true)
            .create_new(true)
            .open(dst)
            .ctx(|| format!("creating {}", dst.display()))?;
        io::copy(&mut input, &mut output).map(drop)
    } else if ft.is_symlink() {
        fs::read_link(src).and_then(|target| symlink(target, dst))
    } else {
        let kind = if ft.is_char_device() {
            libc::S_IFCHR
        } else if ft.is_block_device() {
            libc::S_IFBLK
        } else {
            libc::S_IFIFO
        };
        sys::mknod(dst, kind, 0o600, meta.rdev())
    };
    created.ctx(|| format!("copying {} to {}", src.display(), dst.display()))?;
    lchown(dst, Some(meta.uid()), Some(meta.gid())).ctx(|| format!("chown {}", dst.display()))?;
    // After chown, which clears setuid bits and file capabilities.
    finish(dst, meta, !ft.is_symlink())?;
    copy_xattrs(src, dst)?;
    // Setting xattrs leaves mtime alone, so the times set above hold.
    Ok(())
}

fn finish(path: &Path, meta: &fs::Metadata, chmod: bool) -> Result<()> {
    if chmod {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .ctx(|| format!("chmod {}", path.display()))?;
    }
    sys::lutimes(path, (meta.mtime(), meta.mtime_nsec()))
        .ctx(|| format!("setting times of {}", path.display()))
}

/// Every xattr of `src` onto `dst` (neither followed if a symlink).
pub(crate) fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    for (name, value) in read_xattrs(src)? {
        xattr::set(dst, &name, &value).ctx(|| {
            format!(
                "setting xattr {} on {}",
                name.to_string_lossy(),
                dst.display()
            )
        })?;
    }
    Ok(())
}

/// The xattrs of `path` itself, sorted by name; none where the file system has none.
pub(crate) fn read_xattrs(path: &Path) -> Result<Vec<(std::ffi::OsString, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("listing xattrs of {}", path.display())),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name).ctx(|| {
            format!(
                "reading xattr {} of {}",
                name.to_string_lossy(),
                path.display()
            )
        })? {
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}
