//! A step's changes as a layer tar. Over overlayfs the upper directory is the diff: its
//! whiteouts (0/0 character devices) and opaque directories become `.wh.` entries. For the
//! copying fallback the step's root is compared with the tree it was copied from.
//! Both are plain functions over paths, callable from inside a sandboxed child.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsStr,
    fs,
    io::Write,
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt},
    },
    path::{Path, PathBuf},
};

use kiln_store::{LayerOptions, LayerWriter, OverlayXattrs, WHITEOUT_PREFIX};

use super::{
    copy::read_xattrs,
    error::{Context, Result},
};

/// Write the overlay upper directory `upper` as a layer tar into `out` (entries sorted,
/// hard links, xattrs other than overlay's own, devices, modes, owners, mtimes kept).
pub fn upper_to_layer<W: Write>(
    upper: &Path,
    overlay_xattrs: OverlayXattrs,
    out: W,
    options: &LayerOptions,
) -> Result<W> {
    let options = LayerOptions {
        overlay_whiteouts: true,
        ..options.clone()
    };
    let mut writer = LayerWriter::new(out, options).with_overlay_xattrs(overlay_xattrs);
    writer.append_tree(upper)?;
    Ok(writer.finish()?)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Write,
    Delete,
}

/// Path components: ordered as a depth-first walk with sorted names, the order the layer
/// writer uses, so parents come before children.
type Key = Vec<Vec<u8>>;

/// Write what differs between `lower` (the tree a step started from) and `root` (the tree
/// after the step) as a layer tar into `out`: added and changed entries, and `.wh.NAME`
/// for deletions. Files are compared by type, mode, owner, size, mtime, link target,
/// device and xattrs, not by content (as docker's naive diff does). A changed file with
/// other names (hard links) brings them along, as overlayfs copies the inode up.
pub fn tree_diff_to_layer<W: Write>(
    lower: &Path,
    root: &Path,
    out: W,
    options: &LayerOptions,
) -> Result<W> {
    let mut diff = TreeDiff::default();
    diff.walk(lower, root, &mut Vec::new())?;
    diff.add_link_groups();
    let options = LayerOptions {
        overlay_whiteouts: false,
        ..options.clone()
    };
    let mut writer = LayerWriter::new(out, options);
    for (key, change) in &diff.changes {
        let rel = rel_path(key);
        let full = root.join(&rel);
        match change {
            Change::Write => {
                let meta =
                    fs::symlink_metadata(&full).ctx(|| format!("inspecting {}", full.display()))?;
                writer.append_path(&full, &rel, &meta)?;
            }
            Change::Delete => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                let dir = root.join(parent);
                let meta =
                    fs::symlink_metadata(&dir).ctx(|| format!("inspecting {}", dir.display()))?;
                let mut name = WHITEOUT_PREFIX.as_bytes().to_vec();
                name.extend_from_slice(key.last().expect("a deleted path has a name"));
                writer.append_whiteout(&parent.join(OsStr::from_bytes(&name)), &meta)?;
            }
        }
    }
    Ok(writer.finish()?)
}

fn rel_path(key: &Key) -> PathBuf {
    key.iter().map(|c| OsStr::from_bytes(c)).collect()
}

#[derive(Default)]
struct TreeDiff {
    changes: BTreeMap<Key, Change>,
    /// (device, inode) -> every name of a multiply-linked file of the new tree.
    links: HashMap<(u64, u64), Vec<Key>>,
}

impl TreeDiff {
    fn add(&mut self, key: &Key, change: Change) {
        self.changes.insert(key.clone(), change);
        for end in (1..key.len()).rev() {
            if self.changes.contains_key(&key[..end]) {
                break; // its parents were added with it
            }
            self.changes.insert(key[..end].to_vec(), Change::Write);
        }
    }

    fn walk(&mut self, lower: &Path, root: &Path, key: &mut Key) -> Result<()> {
        let rel = rel_path(key);
        let (old_dir, new_dir) = (lower.join(&rel), root.join(&rel));
        let old_names = match fs::symlink_metadata(&old_dir) {
            Ok(m) if m.is_dir() => names(&old_dir)?,
            _ => Vec::new(),
        };
        let new_names = names(&new_dir)?;
        for name in &new_names {
            key.push(name.clone());
            let (old, new) = (
                old_dir.join(OsStr::from_bytes(name)),
                new_dir.join(OsStr::from_bytes(name)),
            );
            let new_meta =
                fs::symlink_metadata(&new).ctx(|| format!("inspecting {}", new.display()))?;
            if new_meta.file_type().is_socket() {
                key.pop();
                continue; // a layer cannot hold sockets (the upper dir's writer skips them too)
            }
            if new_meta.is_file() && new_meta.nlink() > 1 {
                self.links
                    .entry((new_meta.dev(), new_meta.ino()))
                    .or_default()
                    .push(key.clone());
            }
            let old_meta = fs::symlink_metadata(&old).ok();
            let changed = match &old_meta {
                None => true,
                Some(old_meta) => differs(&old, old_meta, &new, &new_meta)?,
            };
            if changed {
                self.add(key, Change::Write);
            }
            if new_meta.is_dir() {
                self.walk(lower, root, key)?;
            }
            key.pop();
        }
        for name in old_names {
            if new_names.binary_search(&name).is_err() {
                key.push(name);
                self.add(key, Change::Delete);
                key.pop();
            }
        }
        Ok(())
    }

    /// A file written under one name is written under all its names.
    fn add_link_groups(&mut self) {
        let groups: Vec<Vec<Key>> = self
            .links
            .values()
            .filter(|keys| {
                keys.iter()
                    .any(|k| self.changes.get(k) == Some(&Change::Write))
            })
            .cloned()
            .collect();
        for key in groups.iter().flatten() {
            self.add(key, Change::Write);
        }
    }
}

fn names(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let entry = entry.ctx(|| format!("reading {}", dir.display()))?;
        out.push(entry.file_name().as_bytes().to_vec());
    }
    out.sort();
    Ok(out)
}

fn differs(old: &Path, a: &fs::Metadata, new: &Path, b: &fs::Metadata) -> Result<bool> {
    let ta = a.file_type();
    if a.mode() != b.mode() // type and permission bits
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || (a.mtime(), a.mtime_nsec()) != (b.mtime(), b.mtime_nsec())
        || (!ta.is_dir() && a.size() != b.size())
        || a.rdev() != b.rdev()
    {
        return Ok(true);
    }
    if ta.is_symlink()
        && fs::read_link(old).ctx(|| format!("reading {}", old.display()))?
            != fs::read_link(new).ctx(|| format!("reading {}", new.display()))?
    {
        return Ok(true);
    }
    Ok(read_xattrs(old)? != read_xattrs(new)?)
}
