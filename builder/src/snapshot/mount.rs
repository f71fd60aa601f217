//! `Mount`: a step's root. Over overlayfs, the parents' layers as lower directories (the
//! top layer first) with a fresh upper and work directory in a scratch directory; stacks
//! deeper than one mount takes are flattened at the bottom into one applied tree. Without
//! overlayfs, a copy of the applied stack. Unmounted and removed on drop.

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt, lchown},
    },
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use kiln_store::{
    BlobStore, Compression, Digest, LayerOptions, LayerSink, OverlayXattrs, StagedLayer,
};

use super::{
    Backend, LayerBlobs, Scratch, SnapshotError, SnapshotStore,
    copy::copy_tree,
    diff::{tree_diff_to_layer, upper_to_layer},
    error::{Context, Result},
    scratch, sys,
};

/// overlayfs refuses more lower directories than this (OVL_MAX_STACK).
pub const OVERLAY_MAX_LOWERS: usize = 500;
/// Options after the lower directories, at their longest.
const FIXED_OPTIONS: &str = "lowerdir=,upperdir=/proc/self/fd/1234567,workdir=/proc/self/fd/1234567,userxattr,index=off,redirect_dir=nofollow,metacopy=off,volatile";
/// What one more lower directory adds to the options, named as `/proc/self/fd/N:`.
const FD_LOWER_LEN: usize = "/proc/self/fd/1234567:".len();
/// Options that keep the upper directory a plain diff: no inode index, no redirects, no
/// metadata-only copy-ups (all three put content the diff cannot see in the lower dirs).
/// `nofollow`, not `off`: with `userxattr` the kernel refuses anything that follows.
const PLAIN_UPPER: &str = ",index=off,redirect_dir=nofollow,metacopy=off";
/// No sync of the upper directory on unmount (an unmount otherwise syncs the whole file
/// system below it, the largest cost of a short step). Safe here: a step's layer is
/// written and synced as a blob before the unmount, and a crash mid-step throws the
/// scratch directory away (Linux 5.10+; older kernels mount without it).
const VOLATILE: &str = ",volatile";

#[derive(Debug)]
enum Kind {
    Overlay { upper: PathBuf, mounted: bool },
    Copy { lower: PathBuf },
}

/// A step's root file system; its changes become a layer with `commit`.
#[derive(Debug)]
pub struct Mount {
    root: PathBuf,
    kind: Kind,
    overlay_xattrs: OverlayXattrs,
    lowers: usize,
    scratch: Option<Scratch>,
}

impl Mount {
    /// The root the step runs in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_overlay(&self) -> bool {
        matches!(self.kind, Kind::Overlay { .. })
    }

    /// How many lower directories the overlay stacks (0 for a copy).
    pub fn lower_count(&self) -> usize {
        self.lowers
    }

    /// The step's changes as an uncompressed layer tar written into `out`.
    pub fn write_layer<W: Write>(&self, out: W, options: &LayerOptions) -> Result<W> {
        match &self.kind {
            Kind::Overlay { upper, .. } => upper_to_layer(upper, self.overlay_xattrs, out, options),
            Kind::Copy { lower } => tree_diff_to_layer(lower, &self.root, out, options),
        }
    }

    /// The step's changes as a staged layer blob with its diffID, compressed in one pass.
    pub fn commit(
        &self,
        blobs: &BlobStore,
        compression: Compression,
        options: &LayerOptions,
    ) -> Result<StagedLayer> {
        let sink = self.write_layer(LayerSink::new(blobs, compression)?, options)?;
        Ok(sink.finish()?)
    }

    /// Unmount and remove everything, reporting what failed (drop does the same quietly).
    pub fn release(mut self) -> Result<()> {
        self.unmount()?;
        match self.scratch.take() {
            Some(scratch) => scratch.remove(),
            None => Ok(()),
        }
    }

    fn unmount(&mut self) -> Result<()> {
        if let Kind::Overlay { mounted, .. } = &mut self.kind
            && *mounted
        {
            scratch::unmount(&self.root)?;
            *mounted = false;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.unmount();
        // The scratch directory removes itself (and anything still mounted in it).
    }
}

/// Where the lowest `k` of `n` layers are flattened into one tree so that at most `max`
/// lower directories remain; 0 when none need to be. `k` moves in steps of `max / 2`, so
/// the builds of one deep image, a layer deeper at each step, share a flattened tree.
pub fn flatten_point(n: usize, max: usize) -> usize {
    if n <= max {
        return 0;
    }
    let stride = (max / 2).max(1);
    ((n - max + 1).div_ceil(stride) * stride).min(n)
}

/// overlayfs parses `:` and `,` in a path as separators unless escaped.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl SnapshotStore {
    /// A root for a step whose parents are the layers `parents` (bottom first).
    pub fn mount(&self, parents: &[Digest], blobs: &dyn LayerBlobs) -> Result<Mount> {
        match self.options().backend {
            Backend::Copy => self.mount_copy(parents, blobs),
            Backend::Overlay => self.mount_overlay(parents, blobs),
            Backend::Auto if self.overlay_failed.load(Ordering::Relaxed) => {
                self.mount_copy(parents, blobs)
            }
            Backend::Auto => match self.mount_overlay(parents, blobs) {
                Err(SnapshotError::Mount { source, .. }) if overlay_unavailable(&source) => {
                    self.overlay_failed.store(true, Ordering::Relaxed);
                    self.mount_copy(parents, blobs)
                }
                other => other,
            },
        }
    }

    /// The most lower directories one mount takes here: overlayfs's limit, the caller's,
    /// and what fits in the page the mount options must fit in.
    pub fn max_lowers(&self) -> usize {
        let per_lower = if self.fd_paths {
            FD_LOWER_LEN
        } else {
            // Layer and chain directories are named by 64 hex digits: all the same length.
            escape(&self.dir().join("layers").join("0".repeat(64))).len() + 1
        };
        let fixed = if self.fd_paths {
            FIXED_OPTIONS.len()
        } else {
            FIXED_OPTIONS.len() + 2 * escape(&self.scratch_dir()).len() + 200
        };
        let fit = (sys::page_size() - 1).saturating_sub(fixed) / per_lower;
        self.options()
            .max_lowers
            .min(OVERLAY_MAX_LOWERS)
            .min(fit)
            .max(2)
    }

    fn mount_copy(&self, parents: &[Digest], blobs: &dyn LayerBlobs) -> Result<Mount> {
        let lower = self.chain(parents, blobs)?;
        let scratch = Scratch::create(&self.scratch_dir(), "step")?;
        let root = scratch.path().join("root");
        copy_tree(&lower, &root)?;
        Ok(Mount {
            root,
            kind: Kind::Copy { lower },
            overlay_xattrs: self.options().overlay_xattrs,
            lowers: 0,
            scratch: Some(scratch),
        })
    }

    fn mount_overlay(&self, parents: &[Digest], blobs: &dyn LayerBlobs) -> Result<Mount> {
        let lowers = self.lowers(parents, blobs)?;
        let scratch = Scratch::create(&self.scratch_dir(), "step")?;
        let dir = scratch.path();
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir(d).ctx(|| format!("creating {}", d.display()))?;
        }
        // The merged root takes the upper directory's owner and mode: the top layer's.
        let top = fs::metadata(&lowers[0]).ctx(|| format!("inspecting {}", lowers[0].display()))?;
        lchown(&upper, Some(top.uid()), Some(top.gid()))
            .ctx(|| format!("chown {}", upper.display()))?;
        fs::set_permissions(&upper, fs::Permissions::from_mode(top.mode() & 0o7777))
            .ctx(|| format!("chmod {}", upper.display()))?;

        let xattrs = self.options().overlay_xattrs;
        let mut mounted = Err(io::Error::from_raw_os_error(libc::EINVAL));
        // Older kernels refuse `volatile`, or the options that keep the upper dir plain:
        // retry without.
        let volatile = format!("{PLAIN_UPPER}{VOLATILE}");
        for extra in [volatile.as_str(), PLAIN_UPPER, ""] {
            let options = self.overlay_options(&lowers, &upper, &work, xattrs, extra)?;
            mounted = sys::mount_overlay(&merged, &options.text);
            if !matches!(&mounted, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
                break;
            }
        }
        mounted.map_err(|source| SnapshotError::Mount {
            target: merged.clone(),
            lowers: lowers.len(),
            source,
        })?;
        Ok(Mount {
            root: merged,
            kind: Kind::Overlay {
                upper,
                mounted: true,
            },
            overlay_xattrs: xattrs,
            lowers: lowers.len(),
            scratch: Some(scratch),
        })
    }

    /// The lower directories for `parents`, top first.
    fn lowers(&self, parents: &[Digest], blobs: &dyn LayerBlobs) -> Result<Vec<PathBuf>> {
        if parents.is_empty() {
            return Ok(vec![self.empty_dir()]); // overlayfs needs one lower directory
        }
        let k = flatten_point(parents.len(), self.max_lowers());
        let mut lowers = Vec::with_capacity(parents.len() - k + 1);
        let mut seen = HashSet::new();
        for diff_id in parents[k..].iter().rev() {
            // overlayfs refuses a directory twice in one stack (ELOOP), and images repeat
            // layers (empty ones above all). Only the topmost copy counts: whatever a lower
            // copy of a layer could show, the same layer above it shows or hides again.
            if seen.insert(diff_id) {
                lowers.push(self.layer(diff_id, blobs)?);
            }
        }
        if k > 0 {
            lowers.push(self.chain(&parents[..k], blobs)?);
        }
        Ok(lowers)
    }

    fn overlay_options(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        xattrs: OverlayXattrs,
        extra: &str,
    ) -> Result<OverlayOptions> {
        let mut fds = Vec::new();
        // Named through /proc/self/fd, every directory costs a few bytes of the one page the
        // options must fit in, whatever the length of $KILN_ROOT.
        let mut name = |path: &Path| -> Result<String> {
            if !self.fd_paths {
                return Ok(escape(path));
            }
            let file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
            let name = format!("/proc/self/fd/{}", file.as_raw_fd());
            fds.push(file);
            Ok(name)
        };
        let lower_names = lowers.iter().map(|l| name(l)).collect::<Result<Vec<_>>>()?;
        let mut text = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower_names.join(":"),
            name(upper)?,
            name(work)?
        );
        if xattrs == OverlayXattrs::User {
            text.push_str(",userxattr");
        }
        text.push_str(extra);
        if text.len() >= sys::page_size() {
            return Err(SnapshotError::Mount {
                target: upper.to_path_buf(),
                lowers: lowers.len(),
                source: io::Error::other(format!(
                    "the mount options take {} bytes, more than a page",
                    text.len()
                )),
            });
        }
        Ok(OverlayOptions { text, _fds: fds })
    }
}

/// Mount options, with the directories they name through /proc/self/fd held open.
struct OverlayOptions {
    text: String,
    _fds: Vec<File>,
}

/// Errors that mean "no overlayfs here" (not a bug in what was asked).
fn overlay_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EPERM
                | libc::ENODEV
                | libc::EINVAL
                | libc::ENOSYS
                | libc::EACCES
                | libc::EOPNOTSUPP
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattening_keeps_within_the_limit_and_moves_in_steps() {
        for max in [2, 3, 8, 200, 500] {
            for n in 0..1200 {
                let k = flatten_point(n, max);
                let lowers = n - k + usize::from(k > 0);
                assert!(lowers <= max, "n={n} max={max} k={k}");
                assert!(k <= n);
            }
        }
        assert_eq!(flatten_point(600, 195), flatten_point(601, 195));
        assert_eq!(flatten_point(10, 20), 0);
    }

    #[test]
    fn escapes_separators() {
        assert_eq!(escape(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
    }
}
