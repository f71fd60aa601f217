//! `CacheIndex`: one small JSON file per key under `$KILN_ROOT/cache/keys/`, written to a
//! temporary name and renamed, so a reader sees a whole record or none. A record whose
//! layer blob has gone (pruned from the store) is a miss, not an error.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use kiln_store::{BlobStore, Descriptor, Digest};
use serde::{Deserialize, Serialize};

use super::CacheKey;

/// A layer a step produced: its diffID and the stored blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: Digest,
    pub blob: Descriptor,
}

/// What a step produced, enough to rebuild its image state without running it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The history entry's time when the step first ran (a cached rebuild keeps it, so it
    /// gives the same image).
    pub created: String,
    /// None for a step that changes only the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerRecord>,
}

#[derive(Debug)]
pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    /// The index under `kiln_root` (`cache/keys`), created if missing.
    pub fn open(kiln_root: &Path) -> io::Result<CacheIndex> {
        let dir = Self::dir_in(kiln_root);
        fs::create_dir_all(&dir)?;
        Ok(CacheIndex { dir })
    }

    /// Where the index lives (what `kiln prune --cache` removes).
    pub fn dir_in(kiln_root: &Path) -> PathBuf {
        kiln_root.join("cache").join("keys")
    }

    /// The record for `key`, if there is one whose layer is still in `blobs`.
    pub fn get(&self, key: &CacheKey, blobs: &BlobStore) -> Option<CacheRecord> {
        let bytes = fs::read(self.path(key)).ok()?;
        let record: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        match &record.layer {
            Some(layer) if !blobs.contains(&layer.blob.digest) => None,
            _ => Some(record),
        }
    }

    pub fn put(&self, key: &CacheKey, record: &CacheRecord) -> io::Result<()> {
        let path = self.path(key);
        let temp = self
            .dir
            .join(format!(".{}.{}.tmp", key.hex(), std::process::id()));
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        fs::write(&temp, bytes)?;
        fs::rename(&temp, &path).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })
    }

    /// Every blob a record names (kept by `kiln prune` unless the cache is dropped).
    pub fn blobs(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let Ok(bytes) = fs::read(entry?.path()) else {
                continue;
            };
            if let Ok(CacheRecord {
                layer: Some(layer), ..
            }) = serde_json::from_slice(&bytes)
            {
                out.push(layer.blob.digest);
            }
        }
        Ok(out)
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_miss_without_their_blob() {
        let root = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(root.path().join("blobs"), root.path().join("tmp")).unwrap();
        let stored = blobs.put_bytes(b"layer").unwrap();
        let key = CacheKey::root("scratch").then(&[("run", "true")]);
        let record = CacheRecord {
            created: "2026-01-01T00:00:00Z".into(),
            layer: Some(LayerRecord {
                diff_id: Digest::of(b"diff"),
                blob: Descriptor::new("application/vnd.oci.image.layer.v1.tar", stored, 5),
            }),
        };
        CacheIndex::open(root.path())
            .unwrap()
            .put(&key, &record)
            .unwrap();
        let index = CacheIndex::open(root.path()).unwrap();
        assert_eq!(index.get(&key, &blobs), Some(record.clone()));
        assert_eq!(index.blobs().unwrap().len(), 1);

        let gone = CacheRecord {
            layer: Some(LayerRecord {
                blob: Descriptor::new("x", Digest::of(b"pruned"), 6),
                ..record.layer.clone().unwrap()
            }),
            ..record
        };
        let key2 = key.then(&[("run", "false")]);
        index.put(&key2, &gone).unwrap();
        assert_eq!(index.get(&key2, &blobs), None);
    }
}
