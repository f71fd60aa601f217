//! `apply`: a transfer written into a step's root with BuildKit's rules (fsutil's copy):
//! a directory source gives its contents; a file goes to `dest/NAME` when the destination
//! is a directory (it ends in `/`, is `.`, already is one, or several things are copied)
//! and to `dest` itself otherwise; missing directories on the way are created 0755 with
//! the transfer's owner. Files keep their mode and mtime; owners are 0:0 from the context,
//! kept from another stage's tree, or `--chown`'s. A URL's file (remote.rs) is one more
//! source, named after the URL, 0600, with the server's Last-Modified time.

use std::{
    fs::{self, File, Metadata},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    path::Path,
    time::UNIX_EPOCH,
};

use filetime::FileTime;

use super::{
    FilesError, Source, Transfer, archive,
    error::IoContext,
    owner,
    paths::{self, clean},
    remote::{self, Downloads},
    select::{self, Exclude, Match, View},
    write::{Content, Meta, Writer},
};

pub fn apply(
    source: &Source,
    t: &Transfer,
    root: &Path,
    workdir: &str,
    downloads: &mut Downloads,
) -> Result<(), FilesError> {
    // Every URL fetched (or taken from the fetch the cache key made) and checked before
    // anything is written: a checksum mismatch leaves the root untouched.
    let urls = t
        .urls()
        .map(|url| {
            Ok((
                remote::file_name(url),
                downloads.get(url, t.checksum.as_deref())?,
            ))
        })
        .collect::<Result<Vec<_>, FilesError>>()?;
    let view = View::new(source);
    let excludes = Exclude::new(&t.exclude);
    let chown = t
        .chown
        .as_deref()
        .map(|spec| owner::resolve(root, spec))
        .transpose()?;
    let matches = select::select(&view, t, &excludes)?;
    if matches.is_empty() && t.heredocs.is_empty() && urls.is_empty() {
        return Ok(()); // wildcards that matched nothing: BuildKit writes nothing either
    }
    let raw = t.destination.as_str();
    let dest_text = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("{workdir}/{raw}")
    };
    let dest = clean(&dest_text);
    let dir_wanted = raw.ends_with('/')
        || raw == "."
        || raw.ends_with("/.")
        || raw.is_empty()
        || matches.len() + t.heredocs.len() + urls.len() > 1
        || t.parents;
    let mut w = Writer::new(root, chown.unwrap_or((0, 0)));
    if dir_wanted {
        w.mkdir_all(&dest)?;
    }
    let cx = Cx {
        view: &view,
        t,
        chown,
        excludes: &excludes,
    };
    for m in &matches {
        if let Some((below, dirs)) = &m.parents {
            cx.parents(&mut w, &dest, m, below, dirs)?;
        } else if m.meta.is_dir() {
            let (at, kind) = w.resolve_dest(&dest)?;
            if kind == Some(false) {
                return Err(FilesError::Conflict {
                    path: paths::display(&at),
                    why: "cannot copy a directory onto a file",
                });
            }
            w.mkdir_all(&at)?;
            cx.contents(&mut w, &at, m)?;
        } else {
            let (at, kind) = w.resolve_dest(&dest)?;
            if t.add && m.meta.is_file() && archive::is_archive(&m.host(&view)) {
                w.mkdir_all(&at)?;
                archive::extract(&mut w, &m.host(&view), &at, chown)?;
                continue;
            }
            let target = if kind == Some(true) {
                [at.as_slice(), std::slice::from_ref(&m.name)].concat()
            } else {
                at
            };
            cx.put(&mut w, &target, &m.host(&view), &m.meta, false)?;
        }
    }
    for (name, download) in &urls {
        let (at, kind) = w.resolve_dest(&dest)?;
        let target = if kind == Some(true) {
            [at.as_slice(), std::slice::from_ref(name)].concat()
        } else {
            at
        };
        let (uid, gid) = chown.unwrap_or((0, 0));
        let mode = t.chmod.as_ref().map_or(0o600, |c| c.apply(0o600, false));
        let modified = download.body.last_modified.unwrap_or(UNIX_EPOCH);
        let meta = Meta {
            mode,
            uid,
            gid,
            mtime: Some(FileTime::from_system_time(modified)),
        };
        let mut file = File::open(&download.path).at(&download.path)?;
        w.put(&target, Content::File(&mut file), meta, false)?;
    }
    for (name, content) in &t.heredocs {
        let (at, kind) = w.resolve_dest(&dest)?;
        let target = if kind == Some(true) || dir_wanted {
            [at.as_slice(), &clean(name)].concat()
        } else {
            at
        };
        let (uid, gid) = chown.unwrap_or((0, 0));
        let mode = t.chmod.as_ref().map_or(0o644, |c| c.apply(0o644, false));
        let meta = Meta {
            mode,
            uid,
            gid,
            mtime: None,
        };
        w.put(&target, Content::File(&mut content.as_bytes()), meta, false)?;
    }
    w.finish()
}

struct Cx<'a> {
    view: &'a View<'a>,
    t: &'a Transfer,
    chown: Option<(u32, u32)>,
    excludes: &'a Exclude,
}

impl Cx<'_> {
    /// What a source entry becomes: its mode (or --chmod's), its owner (or 0:0, or
    /// --chown's), its mtime.
    fn meta(&self, meta: &Metadata) -> Meta {
        let (uid, gid) = self.chown.unwrap_or(if self.view.keep_owner {
            (meta.uid(), meta.gid())
        } else {
            (0, 0)
        });
        let mode = match &self.t.chmod {
            Some(c) => c.apply(meta.mode(), meta.is_dir()),
            None => meta.mode() & 0o7777,
        };
        Meta {
            mode,
            uid,
            gid,
            mtime: Some(FileTime::from_last_modification_time(meta)),
        }
    }

    /// Copy one source entry (not a directory's contents) to `dest`.
    fn put(
        &self,
        w: &mut Writer,
        dest: &[String],
        host: &Path,
        meta: &Metadata,
        keep_existing: bool,
    ) -> Result<(), FilesError> {
        let m = self.meta(meta);
        let ft = meta.file_type();
        if let Some(key) = select::link_key(meta) {
            if let Some(first) = w.links.get(&key).cloned() {
                w.put(dest, Content::HardLink(first), m, false)?;
                return Ok(());
            }
            w.links.insert(key, dest.to_vec());
        }
        let path = if ft.is_dir() {
            w.put(dest, Content::Dir, m, keep_existing)?
        } else if ft.is_symlink() {
            let target = fs::read_link(host).at(host)?;
            w.put(dest, Content::Symlink(target), m, false)?
        } else if ft.is_file() {
            let mut file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(host)
                .at(host)?;
            w.put(dest, Content::File(&mut file), m, false)?
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = meta.mode() & libc::S_IFMT;
            w.put(dest, Content::Node(kind, meta.rdev()), m, false)?
        } else {
            return Ok(()); // sockets
        };
        if self.view.keep_owner && !ft.is_symlink() {
            copy_xattrs(host, &path);
        }
        Ok(())
    }

    /// A directory's contents into `dest` (which exists).
    fn contents(&self, w: &mut Writer, dest: &[String], m: &Match) -> Result<(), FilesError> {
        let root = self.view.root;
        select::walk(self.view, m, self.excludes, &mut |e| {
            let target = [dest, e.below].concat();
            self.put(w, &target, &paths::host(root, e.rel), e.meta, false)
        })
    }

    /// `--parents`: the match at `dest/<path below the pivot>`, its ancestors created with
    /// their source metadata where missing.
    fn parents(
        &self,
        w: &mut Writer,
        dest: &[String],
        m: &Match,
        below: &[String],
        dirs: &[select::Dir],
    ) -> Result<(), FilesError> {
        let root = self.view.root;
        for d in dirs {
            let target = [dest, &d.below].concat();
            self.put(w, &target, &paths::host(root, &d.rel), &d.meta, true)?;
        }
        let target = [dest, below].concat();
        self.put(w, &target, &m.host(self.view), &m.meta, false)?;
        if m.meta.is_dir() {
            self.contents(w, &target, m)?;
        }
        Ok(())
    }
}

/// Extended attributes of another stage's files (file capabilities above all); failures
/// are ignored as BuildKit ignores them (a file system without xattrs).
fn copy_xattrs(from: &Path, to: &Path) {
    let Ok(names) = xattr::list(from) else {
        return;
    };
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with("trusted.overlay.") || text.starts_with("user.overlay.") {
            continue;
        }
        if let Ok(Some(value)) = xattr::get(from, &name) {
            let _ = xattr::set(to, &name, &value);
        }
    }
}
