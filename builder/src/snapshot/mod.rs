//! Snapshots: every layer unpacked once per diffID under `$KILN_ROOT/snapshots`, shared by
//! all builds; a step's root is an overlay of its parents' layers with a fresh upper
//! directory, and that upper directory is the step's diff. Where overlayfs cannot be
//! mounted, a copying fallback gives the same layers.
//!
//! ```text
//! snapshots/layers/<diffID hex>/   one layer in overlay form (a lower directory)
//! snapshots/chains/<chainID hex>/  a stack applied into one tree (fallback, flattening)
//! snapshots/scratch/<id>/, <id>.lock   a step's upper/work/merged, or an unpack under way
//! snapshots/locks/                 one builder per layer or chain at a time
//! snapshots/empty/                 the lower directory of `FROM scratch`
//! ```
//!
//! Unpack, diff and cleanup are plain functions over paths (`kiln_store::unpack_layer`,
//! `upper_to_layer`, `tree_diff_to_layer`, `cleanup_stale`): a rootless build runs them
//! inside its user namespace, where the files' owners are mapped.

mod copy;
mod diff;
mod error;
mod layers;
mod mount;
mod scratch;
mod sys;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

use kiln_store::OverlayXattrs;

pub use copy::copy_tree;
pub use diff::{tree_diff_to_layer, upper_to_layer};
pub use error::{Result, SnapshotError};
pub use layers::{BlobLayers, LayerBlobs, chain_id};
pub use mount::{Mount, OVERLAY_MAX_LOWERS, flatten_point};
pub use scratch::{CleanupReport, Scratch, cleanup_stale, mounts_below};

use error::Context;

/// How steps get their root file system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// overlayfs, or copies where it cannot be mounted.
    #[default]
    Auto,
    Overlay,
    Copy,
}

#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    pub backend: Backend,
    /// At most this many lower directories per mount (lower it to test flattening).
    pub max_lowers: usize,
    /// `User` for a rootless overlay (mounted with `userxattr`).
    pub overlay_xattrs: OverlayXattrs,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            backend: Backend::Auto,
            max_lowers: OVERLAY_MAX_LOWERS,
            overlay_xattrs: OverlayXattrs::Trusted,
        }
    }
}

impl SnapshotOptions {
    /// The defaults, with the backend from `KILN_SNAPSHOTTER` (`overlay`, `copy`, `auto`).
    pub fn from_env() -> SnapshotOptions {
        let backend = match std::env::var("KILN_SNAPSHOTTER").as_deref() {
            Ok("overlay") => Backend::Overlay,
            Ok("copy") => Backend::Copy,
            _ => Backend::Auto,
        };
        SnapshotOptions {
            backend,
            ..SnapshotOptions::default()
        }
    }
}

/// The snapshots under `$KILN_ROOT/snapshots`.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    options: SnapshotOptions,
    /// Overlay mounts failed for want of overlayfs: `Auto` copies from then on.
    overlay_failed: AtomicBool,
    /// Name directories in mount options as /proc/self/fd/N (short, whatever the root).
    fd_paths: bool,
}

impl SnapshotStore {
    pub fn open(kiln_root: &Path, options: SnapshotOptions) -> Result<SnapshotStore> {
        let dir = kiln_root.join("snapshots");
        for sub in ["layers", "chains", "scratch", "locks", "empty"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
        }
        let empty = dir.join("empty");
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("chmod {}", empty.display()))?;
        // Mount points in /proc/self/mountinfo are canonical: so must our paths be.
        let dir = fs::canonicalize(&dir).ctx(|| format!("resolving {}", dir.display()))?;
        Ok(SnapshotStore {
            dir,
            options,
            overlay_failed: AtomicBool::new(false),
            fd_paths: Path::new("/proc/self/fd").is_dir(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &SnapshotOptions {
        &self.options
    }

    pub fn scratch_dir(&self) -> PathBuf {
        self.dir.join("scratch")
    }

    pub(crate) fn empty_dir(&self) -> PathBuf {
        self.dir.join("empty")
    }

    /// Remove what builds killed before they could clean up left behind: their mounts and
    /// scratch directories. Safe beside running builds (their scratch dirs are locked).
    pub fn cleanup_stale(&self) -> Result<CleanupReport> {
        cleanup_stale(&self.scratch_dir())
    }
}
