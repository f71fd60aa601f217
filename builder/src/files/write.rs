//! `Writer`: puts entries into a step's root. Every destination path is resolved inside
//! the root (paths.rs); the last component is never followed: what is there is replaced
//! (a file, a symlink) or refused (a directory in a file's place), so a symlink in the
//! image cannot redirect a write. Directory mtimes are set last, deepest first, since
//! writing into a directory changes its mtime.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, lchown, symlink},
    path::{Path, PathBuf},
};

use filetime::FileTime;

use super::{
    FilesError,
    error::IoContext,
    paths::{self, display},
    sys,
};

/// What one entry is.
pub(crate) enum Content<'a> {
    Dir,
    File(&'a mut dyn Read),
    Symlink(PathBuf),
    /// A second name for a file already written in this transfer (destination segments).
    HardLink(Vec<String>),
    /// `libc::S_IFCHR`, `S_IFBLK` or `S_IFIFO`, and the device number.
    Node(u32, u64),
}

/// Mode (permission and special bits), owner and mtime an entry gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// None: now (heredoc files, created parents).
    pub mtime: Option<FileTime>,
}

pub(crate) struct Writer<'r> {
    pub root: &'r Path,
    /// Owner of directories created on the way (`--chown`, else root).
    pub owner: (u32, u32),
    /// Directories whose mtime to set at the end.
    dir_times: Vec<(PathBuf, FileTime)>,
    /// Last parent resolved: consecutive entries mostly share one.
    parent: Option<(Vec<String>, PathBuf)>,
    /// Hard links of the source: (device, inode) to the destination first written.
    pub links: HashMap<(u64, u64), Vec<String>>,
}

impl<'r> Writer<'r> {
    pub fn new(root: &'r Path, owner: (u32, u32)) -> Writer<'r> {
        Writer {
            root,
            owner,
            dir_times: Vec::new(),
            parent: None,
            links: HashMap::new(),
        }
    }

    /// Resolve `dest` inside the root following every symlink (BuildKit resolves a
    /// destination with fs.RootPath): the segments and whether it is a directory.
    pub fn resolve_dest(&self, dest: &[String]) -> Result<(Vec<String>, Option<bool>), FilesError> {
        let r = paths::resolve(self.root, dest, true)?;
        let kind = if r.exists() {
            let host = paths::host(self.root, &r.segments);
            Some(fs::metadata(&host).at(&host)?.is_dir())
        } else {
            None
        };
        Ok((r.segments, kind))
    }

    /// `mkdir -p` inside the root: missing directories are created 0755, owned by the
    /// transfer's owner (BuildKit's MkdirAll with the chown user), mtime now.
    pub fn mkdir_all(&mut self, dest: &[String]) -> Result<PathBuf, FilesError> {
        let r = paths::resolve(self.root, dest, true)?;
        for n in r.existing + 1..=r.segments.len() {
            let host = paths::host(self.root, &r.segments[..n]);
            match fs::DirBuilder::new().mode(0o755).create(&host) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(conflict_or(&r.segments[..n], e)),
            }
            lchown(&host, Some(self.owner.0), Some(self.owner.1)).at(&host)?;
            // DirBuilder's mode went through the umask.
            fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).at(&host)?;
        }
        let host = paths::host(self.root, &r.segments);
        if !fs::metadata(&host).at(&host)?.is_dir() {
            return Err(FilesError::Conflict {
                path: display(&r.segments),
                why: "not a directory",
            });
        }
        Ok(host)
    }

    /// The host path of `dest`'s parent, created if missing, resolved inside the root.
    fn parent(&mut self, dest: &[String]) -> Result<PathBuf, FilesError> {
        let parent = &dest[..dest.len().saturating_sub(1)];
        if let Some((segs, host)) = &self.parent
            && segs == parent
        {
            return Ok(host.clone());
        }
        let host = self.mkdir_all(parent)?;
        self.parent = Some((parent.to_vec(), host.clone()));
        Ok(host)
    }

    /// Put one entry at `dest` (segments below the root). With `keep_existing`, a
    /// directory that is already there is left as it is (`--parents` ancestors, archive
    /// directories); otherwise it takes the entry's mode, owner and mtime.
    pub fn put(
        &mut self,
        dest: &[String],
        content: Content<'_>,
        meta: Meta,
        keep_existing: bool,
    ) -> Result<PathBuf, FilesError> {
        let Some(name) = dest.last() else {
            // The root itself: only a directory fits.
            return match content {
                Content::Dir => {
                    if !keep_existing {
                        self.set_meta(self.root.to_path_buf(), meta, true)?;
                    }
                    Ok(self.root.to_path_buf())
                }
                _ => Err(FilesError::Conflict {
                    path: "/".into(),
                    why: "cannot replace the root directory with a file",
                }),
            };
        };
        let path = self.parent(dest)?.join(name);
        let existing = match fs::symlink_metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(FilesError::io(display(dest), e)),
        };
        let is_dir = matches!(content, Content::Dir);
        match (&existing, is_dir) {
            (Some(m), true) if m.is_dir() => {
                if !keep_existing {
                    self.set_meta(path.clone(), meta, true)?;
                }
                return Ok(path);
            }
            (Some(_), true) => {
                return Err(FilesError::Conflict {
                    path: display(dest),
                    why: "a directory cannot replace a file or symlink",
                });
            }
            (Some(m), false) if m.is_dir() => {
                return Err(FilesError::Conflict {
                    path: display(dest),
                    why: "a file cannot replace a directory",
                });
            }
            // Unlinking never follows a symlink: the link goes, its target stays.
            (Some(_), false) => fs::remove_file(&path).at(display(dest))?,
            (None, _) => {}
        }
        match content {
            Content::Dir => fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .at(display(dest))?,
            Content::File(reader) => {
                let mut file = File::options()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&path)
                    .at(display(dest))?;
                io::copy(reader, &mut file).at(display(dest))?;
            }
            Content::Symlink(target) => symlink(&target, &path).at(display(dest))?,
            Content::HardLink(first) => {
                let (first, _) = self.resolve_dest_nofollow(&first)?;
                fs::hard_link(&first, &path).at(display(dest))?;
                return Ok(path); // shares the first name's metadata
            }
            Content::Node(kind, rdev) => sys::mknod(&path, kind, 0o600, rdev).at(display(dest))?,
        }
        self.set_meta(path.clone(), meta, is_dir)?;
        Ok(path)
    }

    fn resolve_dest_nofollow(&self, dest: &[String]) -> Result<(PathBuf, bool), FilesError> {
        let r = paths::resolve(self.root, dest, false)?;
        Ok((paths::host(self.root, &r.segments), r.exists()))
    }

    /// Owner first (chown clears setuid bits and file capabilities), then mode, then
    /// times (directories' at the end).
    fn set_meta(&mut self, path: PathBuf, meta: Meta, is_dir: bool) -> Result<(), FilesError> {
        lchown(&path, Some(meta.uid), Some(meta.gid)).at(&path)?;
        let is_link = fs::symlink_metadata(&path)
            .at(&path)?
            .file_type()
            .is_symlink();
        if !is_link {
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode & 0o7777)).at(&path)?;
        }
        if let Some(mtime) = meta.mtime {
            if is_dir {
                self.dir_times.push((path, mtime));
            } else {
                filetime::set_symlink_file_times(&path, mtime, mtime).at(&path)?;
            }
        }
        Ok(())
    }

    /// Set the directories' mtimes, deepest last-written first.
    pub fn finish(self) -> Result<(), FilesError> {
        for (path, mtime) in self.dir_times.into_iter().rev() {
            filetime::set_symlink_file_times(&path, mtime, mtime).at(&path)?;
        }
        Ok(())
    }
}

fn conflict_or(segments: &[String], e: io::Error) -> FilesError {
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        FilesError::Conflict {
            path: display(segments),
            why: "a parent is not a directory",
        }
    } else {
        FilesError::io(display(segments), e)
    }
}
