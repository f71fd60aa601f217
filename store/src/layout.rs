//! `ImageLayout`: a directory in the OCI image layout (`oci-layout`, `index.json`, `blobs/`),
//! with `index.json` replaced atomically under a lock so several processes can share it.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use crate::{
    BlobStore, Error, Index, Result,
    durable::{Readers, write_atomically},
    error::IoContext,
    media_type,
    spec::{self, OciLayout},
};

/// index.json is read whole: refuse absurd ones rather than exhaust memory.
const INDEX_LIMIT: u64 = 64 << 20;

#[derive(Clone, Debug)]
pub struct ImageLayout {
    root: PathBuf,
    locks: PathBuf,
    blobs: BlobStore,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LayoutLock {
    _file: File,
}

impl ImageLayout {
    /// Open the layout at `root`, creating it if needed. `state` holds staging files and lock
    /// files; it must be on the same filesystem as `root`.
    pub fn create(root: impl Into<PathBuf>, state: impl AsRef<Path>) -> Result<ImageLayout> {
        let root = root.into();
        let state = state.as_ref();
        let layout = ImageLayout {
            blobs: BlobStore::open(root.join("blobs"), state.join("tmp"))?,
            locks: state.join("locks"),
            root,
        };
        fs::create_dir_all(&layout.locks).ctx(|| format!("creating {}", layout.locks.display()))?;
        let marker = layout.root.join("oci-layout");
        if !marker.exists() {
            let doc = OciLayout {
                image_layout_version: media_type::OCI_LAYOUT_VERSION.to_string(),
            };
            write_atomically(&marker, Readers::Everyone, &spec::to_json(&doc))?;
        } else {
            let bytes = fs::read(&marker).ctx(|| format!("reading {}", marker.display()))?;
            let doc: OciLayout = spec::from_json(&bytes, &marker.display().to_string())?;
            if doc.image_layout_version != media_type::OCI_LAYOUT_VERSION {
                return Err(Error::BadLayout {
                    path: layout.root.clone(),
                    detail: format!(
                        "imageLayoutVersion {} is not supported (expected {})",
                        doc.image_layout_version,
                        media_type::OCI_LAYOUT_VERSION
                    ),
                });
            }
        }
        let index = layout.root.join("index.json");
        if !index.exists() {
            let _guard = layout.lock("index", true)?;
            if !index.exists() {
                write_atomically(&index, Readers::Everyone, &spec::to_json(&Index::default()))?;
            }
        }
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        let file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let meta = file
            .metadata()
            .ctx(|| format!("reading {}", path.display()))?;
        if meta.len() > INDEX_LIMIT {
            return Err(Error::BadLayout {
                path: self.root.clone(),
                detail: format!("index.json is {} bytes", meta.len()),
            });
        }
        let bytes = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        spec::from_json(&bytes, &path.display().to_string())
    }

    /// Read-modify-write `index.json` under an exclusive lock; the new file replaces the old
    /// by rename, so a reader sees the old index or the new one, never half of one.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _guard = self.lock("index", true)?;
        let mut index = self.index()?;
        let out = change(&mut index)?;
        write_atomically(
            &self.root.join("index.json"),
            Readers::Everyone,
            &spec::to_json(&index),
        )?;
        Ok(out)
    }

    /// Name `descriptor` in `index.json` with the `ref.name` annotation `name` (a full
    /// reference in kiln's store, a bare tag in an `oci:` directory), atomically.
    pub fn set_named(&self, name: Option<&str>, descriptor: &crate::Descriptor) -> Result<()> {
        self.update_index(|index| {
            crate::images::set_named(index, name, descriptor);
            Ok(())
        })
    }

    /// Taken shared by everything that adds to the store, exclusive by what deletes blobs,
    /// so garbage collection never removes a blob that a running load is about to tag.
    pub fn gc_lock(&self, exclusive: bool) -> Result<LayoutLock> {
        self.lock("gc", exclusive)
    }

    fn lock(&self, name: &str, exclusive: bool) -> Result<LayoutLock> {
        let path = self.locks.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening lock {}", path.display()))?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .ctx(|| format!("locking {}", path.display()))?;
        Ok(LayoutLock { _file: file })
    }
}
