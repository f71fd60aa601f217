//! `Created`: what opening a destination made where nothing was, removed again if the
//! copy fails, so a failed `copy … oci:DIR` leaves no empty layout behind.

use std::path::{Path, PathBuf};

/// Paths a destination created where nothing was, removed again when dropped (a copy
/// that failed) unless `keep` was called: a failed copy leaves no empty layout behind.
#[derive(Default)]
pub(super) struct Created(Vec<PathBuf>);

impl Created {
    /// What `ImageLayout::create(dir)` is about to create: the topmost missing ancestor
    /// of `dir` (with everything under it), or the layout's files in an existing `dir`.
    pub(super) fn before_layout(dir: &Path) -> Created {
        let missing = dir
            .ancestors()
            .filter(|p| !p.as_os_str().is_empty())
            .take_while(|p| std::fs::symlink_metadata(p).is_err())
            .last();
        if let Some(top) = missing {
            return Created(vec![top.to_path_buf()]);
        }
        Created(
            ["oci-layout", "index.json", "blobs"]
                .iter()
                .map(|name| dir.join(name))
                .filter(|p| std::fs::symlink_metadata(p).is_err())
                .collect(),
        )
    }

    pub(super) fn keep(&mut self) {
        self.0.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for path in self.0.drain(..) {
            // Best effort: the copy's own error is the one to report.
            let _ = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(_) => Ok(()),
            };
        }
    }
}
