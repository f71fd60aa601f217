//! Whiteouts: written as overlayfs writes them (overlay form) or carried out on the tree of
//! the layers below (applied form), never reaching through a symlink.

use std::{fs, os::fd::AsFd, os::unix::ffi::OsStrExt as _};

use super::{UnpackMode, Unpacker, fsops, join, os};
use crate::{OPAQUE_WHITEOUT, Result, WHITEOUT_PREFIX};

impl Unpacker<'_> {
    pub(super) fn whiteout(
        &mut self,
        path: &[u8],
        dir: &[u8],
        name: &[u8],
        hidden: &[u8],
    ) -> Result<()> {
        if name == OPAQUE_WHITEOUT.as_bytes() {
            return self.opaque(dir);
        }
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Ok(()); // aufs bookkeeping (`.wh..wh.plnk`, ...): docker skips it too
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(self.unsafe_path(path, "is a whiteout of no valid name".into()));
        }
        let target = join(dir, hidden);
        match self.options.mode {
            UnpackMode::Overlay => {
                let parent = self.parent(dir)?;
                let p = parent.as_fd();
                let existing = fsops::kind_at(p, hidden)
                    .map_err(|e| self.io_error(&target, "inspecting", e))?;
                if existing.is_none() {
                    fsops::mknod_at(p, hidden, libc::S_IFCHR, 0, 0)
                        .map_err(|e| self.io_error(&target, "creating the whiteout", e))?;
                }
                Ok(())
            }
            UnpackMode::Applied => {
                if self.touched.contains(&target) {
                    return Ok(());
                }
                let Ok(Some(parent)) = self.existing_dir(dir) else {
                    return Ok(()); // nothing below to hide
                };
                if fsops::kind_at(parent.as_fd(), hidden)
                    .map_err(|e| self.io_error(&target, "inspecting", e))?
                    .is_some()
                {
                    self.remove(parent.as_fd(), &target, hidden)?;
                }
                Ok(())
            }
        }
    }

    fn opaque(&mut self, dir: &[u8]) -> Result<()> {
        let fd = self.dir(dir)?;
        match self.options.mode {
            UnpackMode::Overlay => {
                let name = self.options.overlay_xattrs.opaque();
                fsops::fsetxattr(fd.as_fd(), name, b"y")
                    .map_err(|e| self.io_error(dir, &format!("setting {name} on"), e))
            }
            UnpackMode::Applied => {
                self.touch(dir);
                self.cached = None;
                self.clear_untouched(dir)
            }
        }
    }

    /// Remove everything under `dir` that this layer did not write.
    fn clear_untouched(&self, dir: &[u8]) -> Result<()> {
        let full = self.root_path.join(os(dir));
        let fail = |action: &str, e| self.io_error(dir, action, e);
        for child in fs::read_dir(&full).map_err(|e| fail("reading", e))? {
            let child = child.map_err(|e| fail("reading", e))?;
            let rel = join(dir, child.file_name().as_bytes());
            let is_dir = child.file_type().map_err(|e| fail("reading", e))?.is_dir();
            if !self.touched.contains(&rel) {
                let path = child.path();
                if is_dir {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                }
                .map_err(|e| self.io_error(&rel, "removing", e))?;
            } else if is_dir {
                self.clear_untouched(&rel)?;
            }
        }
        Ok(())
    }

    pub(super) fn touch(&mut self, path: &[u8]) {
        if !self.touched.insert(path.to_vec()) {
            return;
        }
        let mut end = path.len();
        while let Some(i) = path[..end].iter().rposition(|&b| b == b'/') {
            if !self.touched.insert(path[..i].to_vec()) {
                return;
            }
            end = i;
        }
    }
}
