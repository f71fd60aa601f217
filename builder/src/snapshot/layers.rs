//! Unpacked layers, each once per diffID and shared by every build: `layers/<hex>` holds a
//! layer alone in overlay form, `chains/<hex>` the applied form of a stack of layers (named
//! by its OCI chain ID), for the copying fallback and for flattening stacks deeper than
//! overlayfs takes. Both are unpacked into a scratch directory and renamed into place, under
//! a per-name lock, so concurrent builds wait for one unpack and never see half of one.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, BufReader, Read},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use kiln_store::{BlobStore, Digest, Image, UnpackMode, UnpackOptions, unpack_layer};

use super::{
    Scratch, SnapshotError, SnapshotStore,
    copy::copy_tree,
    error::{Context, Result},
    sys,
};

/// Where the bytes of a layer come from, by diffID.
pub trait LayerBlobs {
    /// The layer's blob (plain, gzip or zstd).
    fn open_layer(&self, diff_id: &Digest) -> Result<Box<dyn Read + Send + '_>>;
}

/// Layers in a blob store, with the blob digest of each diffID.
pub struct BlobLayers<'a> {
    blobs: &'a BlobStore,
    by_diff_id: HashMap<Digest, Digest>,
}

impl<'a> BlobLayers<'a> {
    pub fn new(blobs: &'a BlobStore) -> BlobLayers<'a> {
        BlobLayers {
            blobs,
            by_diff_id: HashMap::new(),
        }
    }

    /// Every layer of `image` (its config's diffIDs against its manifest's layers).
    pub fn with_image(mut self, image: &Image) -> BlobLayers<'a> {
        let pairs = image.config.rootfs.diff_ids.iter();
        for (diff_id, layer) in pairs.zip(&image.manifest.layers) {
            self.insert(diff_id.clone(), layer.digest.clone());
        }
        self
    }

    pub fn insert(&mut self, diff_id: Digest, blob: Digest) {
        self.by_diff_id.insert(diff_id, blob);
    }
}

impl LayerBlobs for BlobLayers<'_> {
    fn open_layer(&self, diff_id: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        let blob = self
            .by_diff_id
            .get(diff_id)
            .ok_or_else(|| SnapshotError::UnknownLayer(diff_id.clone()))?;
        let file = self.blobs.open_blob(blob)?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// The OCI chain ID of a stack of layers (bottom first); `None` for no layers.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(first.clone(), |chain, diff_id| {
        Digest::of(format!("{chain} {diff_id}").as_bytes())
    }))
}

impl SnapshotStore {
    /// The layer `diff_id` alone, in overlay form, unpacked now if it is not yet.
    pub fn layer(&self, diff_id: &Digest, blobs: &dyn LayerBlobs) -> Result<PathBuf> {
        let dest = self.dir().join("layers").join(diff_id.hex());
        self.build_once(&dest, &format!("layer-{}", diff_id.hex()), |tree| {
            self.unpack_into(diff_id, blobs, tree, UnpackMode::Overlay)
        })?;
        Ok(dest)
    }

    /// The stack `diff_ids` (bottom first) applied into one tree, built now if it is not
    /// yet: from the longest stack below it that is already built, plus the rest.
    pub fn chain(&self, diff_ids: &[Digest], blobs: &dyn LayerBlobs) -> Result<PathBuf> {
        let Some(id) = chain_id(diff_ids) else {
            return Ok(self.empty_dir());
        };
        let dest = self.chain_path(&id);
        self.build_once(&dest, &format!("chain-{}", id.hex()), |tree| {
            let base = (1..diff_ids.len()).rev().find_map(|n| {
                let below = self.chain_path(&chain_id(&diff_ids[..n])?);
                below.is_dir().then_some((n, below))
            });
            let start = match base {
                Some((n, below)) => {
                    copy_tree(&below, tree)?;
                    n
                }
                None => {
                    make_root(tree)?;
                    0
                }
            };
            for diff_id in &diff_ids[start..] {
                self.unpack_into(diff_id, blobs, tree, UnpackMode::Applied)?;
            }
            Ok(())
        })?;
        Ok(dest)
    }

    fn chain_path(&self, id: &Digest) -> PathBuf {
        self.dir().join("chains").join(id.hex())
    }

    fn unpack_into(
        &self,
        diff_id: &Digest,
        blobs: &dyn LayerBlobs,
        tree: &Path,
        mode: UnpackMode,
    ) -> Result<()> {
        if !tree.exists() {
            make_root(tree)?;
        }
        let options = UnpackOptions {
            mode,
            overlay_xattrs: self.options().overlay_xattrs,
        };
        let what = format!("layer {diff_id}");
        let unpacked = unpack_layer(blobs.open_layer(diff_id)?, tree, &options, &what)?;
        if &unpacked.diff_id != diff_id {
            return Err(SnapshotError::DiffIdMismatch {
                diff_id: diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        Ok(())
    }

    /// Make `dest` with `build` (given a fresh path to create the tree at) unless it exists:
    /// one builder at a time per `lock`, the tree renamed into place when complete.
    fn build_once(
        &self,
        dest: &Path,
        lock: &str,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        if dest.is_dir() {
            return Ok(());
        }
        let lock_path = self.dir().join("locks").join(format!("{lock}.lock"));
        let lock = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .ctx(|| format!("opening {}", lock_path.display()))?;
        lock.lock()
            .ctx(|| format!("locking {}", lock_path.display()))?;
        if dest.is_dir() {
            return Ok(()); // another build made it while this one waited
        }
        let scratch = Scratch::create(&self.scratch_dir(), "unpack")?;
        let tree = scratch.path().join("tree");
        build(&tree)?;
        sys::syncfs(&tree).ctx(|| format!("syncing {}", tree.display()))?;
        match fs::rename(&tree, dest) {
            Ok(()) => {}
            // Made by a process that did not take the lock: keep theirs.
            Err(e) if dest.is_dir() && is_not_empty(&e) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("renaming {} to {}", tree.display(), dest.display()));
            }
        }
        scratch.remove()
    }
}

fn is_not_empty(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST))
}

/// A tree's root directory, 0755 whatever the umask (a layer's `./` entry may change it).
pub(crate) fn make_root(path: &Path) -> Result<()> {
    fs::create_dir(path).ctx(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .ctx(|| format!("chmod {}", path.display()))
}
