//! `RegistryStorage`: everything the registry keeps, as objects in an `object_store`
//! (the local filesystem now, S3-compatible stores later), so that any replica can serve
//! any request. Blobs are content-addressed and shared by every repository; a blob appears
//! under its digest only after its bytes were hashed and matched.
//!
//! ```text
//! blobs/<alg>/ab/<hex>                    blob content, written once, by rename (sha256, or
//!                                         sha512 for what clients address so)
//! uploads/<id>/session.json               an upload session: its repository
//! uploads/<id>/chunks/<offset:020>        the chunks received so far, one object each
//! staging/<random>                        a blob being assembled and hashed
//! repositories/<name>/…                   links, manifests and tags (see `repository`)
//! ```
//!
//! On the local filesystem every write is fsynced, and its directory after a rename,
//! before it is acknowledged (`local::LocalStore`): a blob or tag a client was told is
//! stored survives a power cut, not only a killed process.
//!
//! No state lives in process memory and no write depends on conditional PUTs (Garage
//! ignores `If-None-Match`): what two replicas may race on is either content-addressed
//! (same bytes, same name) or last-writer-wins.

mod claim;
mod gc;
mod local;
mod repository;
mod upload;

use std::{ops::Range, path::Path as FsPath, sync::Arc};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use kiln_store::Digest;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};

pub use claim::{Claim, ClaimKind, WRITING_HOLD};
pub use gc::GcReport;
pub use repository::StoredManifest;
pub use upload::UploadSession;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} not found")]
    NotFound(String),

    #[error("digest mismatch: the client said {expected}, the bytes are {actual}")]
    DigestInvalid { expected: Digest, actual: Digest },

    /// A chunk that does not start where the upload ends (out of order or overlapping).
    #[error("chunk starts at byte {start}, but the upload holds {size} bytes")]
    RangeInvalid { start: u64, size: u64 },

    #[error("reading the request body: {0}")]
    Body(String),

    /// A garbage collection held an object the request needs for too long.
    #[error("busy: {0}")]
    Busy(String),

    #[error("storage: {0}")]
    Backend(object_store::Error),
}

/// An object that vanished under a request (a finished upload, a collected blob) is
/// `NotFound`, never a backend failure: the API answers 404, not 500, and the message
/// carries no storage path (local storage names files by their full path).
impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => {
                StorageError::NotFound("a stored object".into())
            }
            other => StorageError::Backend(other),
        }
    }
}

impl StorageError {
    fn from_backend(what: impl Into<String>, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound(what.into()),
            other => StorageError::Backend(other),
        }
    }
}

/// Multipart parts of this size for object stores: big enough for S3's 5 MiB minimum,
/// small enough that memory does not grow with the blob.
const PART_SIZE: usize = 8 << 20;
/// Parts for the local filesystem, which has no minimum: with up to five parts held per
/// upload (one filling, four being written), 2 MiB parts keep the server at ~20 MiB peak
/// RSS through a 512 MiB push instead of ~30 MiB, and pushed no slower in 8 alternated runs.
const LOCAL_PART_SIZE: usize = 2 << 20;

#[derive(Clone, Debug)]
pub struct RegistryStorage {
    store: Arc<dyn ObjectStore>,
    part_size: usize,
    /// The directory of local storage: gc sweeps the partial files a crash left there,
    /// which object_store's listings do not show.
    local_root: Option<std::path::PathBuf>,
}

impl RegistryStorage {
    pub fn new(store: Arc<dyn ObjectStore>) -> RegistryStorage {
        RegistryStorage {
            store,
            part_size: PART_SIZE,
            local_root: None,
        }
    }

    /// Storage in a local directory (created if needed).
    pub fn local(root: &FsPath) -> Result<RegistryStorage> {
        std::fs::create_dir_all(root).map_err(|e| {
            StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })?;
        Ok(RegistryStorage {
            store: Arc::new(local::LocalStore::new(root)?),
            part_size: LOCAL_PART_SIZE,
            local_root: Some(root.to_path_buf()),
        })
    }

    fn blob_path(digest: &Digest) -> Path {
        let hex = digest.hex();
        Path::from(format!("blobs/{}/{}/{hex}", digest.algorithm(), &hex[..2]))
    }

    /// The size of a blob, or `None` when the registry does not have it.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.store.head(&Self::blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A blob's bytes (all, or `range`), streamed; with the blob's total size.
    pub async fn get_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        self.read_object(&Self::blob_path(digest), range)
            .await
            .map_err(|e| match e {
                StorageError::NotFound(_) => StorageError::NotFound(format!("blob {digest}")),
                other => other,
            })
    }

    /// Any object's bytes, streamed, with its total size.
    async fn read_object(
        &self,
        path: &Path,
        range: Option<Range<u64>>,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let options = object_store::GetOptions {
            range: range.map(Into::into),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(path, options)
            .await
            .map_err(|e| StorageError::from_backend(path.to_string(), e))?;
        let size = got.meta.size;
        let range = got.range.clone();
        let stream = match got.payload {
            // object_store reads local files 8 KiB at a time, which caps a pull at a few
            // hundred MB/s here; read them in 1 MiB blocks on the blocking pool instead.
            object_store::GetResultPayload::File(file, _) => file_stream(file, range),
            other => object_store::GetResult {
                payload: other,
                ..got
            }
            .into_stream()
            .map(|r| r.map_err(StorageError::from))
            .boxed(),
        };
        Ok((size, stream))
    }

    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.store
            .delete(&Self::blob_path(digest))
            .await
            .map_err(|e| StorageError::from_backend(format!("blob {digest}"), e))
    }

    /// Every object under `prefix` (recursively). An object that vanishes while it is
    /// listed (a finished upload, a collected blob) is left out, not an error.
    async fn list_under(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        Ok(self
            .store
            .list(Some(prefix))
            .filter(|r| {
                futures::future::ready(!matches!(r, Err(object_store::Error::NotFound { .. })))
            })
            .try_collect()
            .await?)
    }

    /// Make the staged object `from` the blob `digest`, claimed first: a collector that
    /// is deleting an older copy of the blob finishes before the new one takes its name,
    /// and none deletes the new one.
    async fn publish_blob(&self, from: &Path, digest: &Digest, kind: ClaimKind) -> Result<()> {
        let blob = Self::blob_path(digest);
        self.claim_settled(&blob, kind).await?;
        self.store.rename(from, &blob).await?;
        Ok(())
    }

    /// Store a whole blob from a stream; it becomes visible only if its digest is `expected`.
    pub async fn put_blob<S, E>(&self, expected: &Digest, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.commit_stream(
            expected,
            body.map(|r| r.map_err(|e| StorageError::Body(e.to_string()))),
            ClaimKind::Told,
        )
        .await
    }

    /// Hash `body` (in `expected`'s algorithm) into a staging object; rename it to the
    /// blob's name if the digest matches, delete it otherwise. Either way nothing
    /// half-written carries the name.
    async fn commit_stream<S>(&self, expected: &Digest, mut body: S, kind: ClaimKind) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let staging = Path::from(format!("staging/{}", random_id()));
        let upload = self.store.put_multipart(&staging).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut hasher = expected.hasher();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Err(e) = writer.wait_for_capacity(4).await {
                return Err(e.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        let actual = hasher.finish();
        if &actual != expected {
            let _ = self.store.delete(&staging).await;
            return Err(StorageError::DigestInvalid {
                expected: expected.clone(),
                actual,
            });
        }
        // Same digest, same bytes: overwriting an existing blob is harmless.
        if let Err(e) = self.publish_blob(&staging, expected, kind).await {
            let _ = self.store.delete(&staging).await;
            return Err(e);
        }
        Ok(size)
    }
}

const READ_BLOCK: usize = 1 << 20;

/// Stream `range` of a local file in `READ_BLOCK` pieces, each read on the blocking pool.
fn file_stream(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, Result<Bytes>> {
    let state = (file, range.start, range.end);
    futures::stream::try_unfold(state, |(file, pos, end)| async move {
        if pos >= end {
            return Ok(None);
        }
        let len = READ_BLOCK.min((end - pos) as usize);
        let (file, buf) = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, pos).map(|()| (file, buf))
        })
        .await
        .map_err(|e| StorageError::Body(e.to_string()))?
        .map_err(|e| {
            StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })?;
        Ok(Some((Bytes::from(buf), (file, pos + len as u64, end))))
    })
    .boxed()
}

/// 128 random bits as hex: upload ids must not be guessable by other clients.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests;
