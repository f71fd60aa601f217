//! `UploadSession`: a blob upload in progress (POST, PATCH…, PUT), kept entirely in storage.
//! Each PATCH becomes one chunk object named by its offset, so the upload's size is the
//! sum of its chunks and any replica can take the next request. A first PATCH without
//! Content-Range is hashed as it arrives: when it turns out to be the whole blob (docker,
//! skopeo and containerd push POST, one PATCH, PUT), the PUT renames it into place
//! instead of copying it. That first hash is sha256: a blob pushed under a sha512 digest
//! is copied (and hashed in sha512) at the PUT instead.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use kiln_store::Digest;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{ClaimKind, RegistryStorage, Result, StorageError, random_id};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repository: String,
    /// Bytes received so far.
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    repository: String,
}

fn session_path(id: &str) -> Path {
    Path::from(format!("uploads/{id}/session.json"))
}

/// The digest of the chunk at offset 0, written once that chunk is complete.
fn first_chunk_digest_path(id: &str) -> Path {
    Path::from(format!("uploads/{id}/first-chunk.sha256"))
}

fn chunks_prefix(id: &str) -> Path {
    Path::from(format!("uploads/{id}/chunks"))
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl RegistryStorage {
    pub async fn start_upload(&self, repository: &str) -> Result<UploadSession> {
        let id = random_id();
        let record = SessionRecord {
            repository: repository.to_string(),
        };
        let json = serde_json::to_vec(&record).expect("serialisable");
        self.store
            .put(&session_path(&id), PutPayload::from(json))
            .await?;
        Ok(UploadSession {
            id,
            repository: repository.to_string(),
            size: 0,
        })
    }

    /// The session and how many bytes it holds; `NotFound` for unknown or finished ones.
    pub async fn upload_status(&self, id: &str) -> Result<UploadSession> {
        let not_found = || StorageError::NotFound(format!("upload {id}"));
        if !valid_id(id) {
            return Err(not_found());
        }
        let record = self
            .store
            .get(&session_path(id))
            .await
            .map_err(|e| StorageError::from_backend(format!("upload {id}"), e))?
            .bytes()
            .await?;
        let record: SessionRecord = serde_json::from_slice(&record).map_err(|_| not_found())?;
        let chunks = self.chunks(id).await?;
        Ok(UploadSession {
            id: id.to_string(),
            repository: record.repository,
            size: chunks.last().map_or(0, |(offset, len, _)| offset + len),
        })
    }

    /// (offset, length, path) of each chunk, in order; gaps or overlaps (two replicas
    /// racing) make the upload unusable, which `finish_upload` reports.
    async fn chunks(&self, id: &str) -> Result<Vec<(u64, u64, Path)>> {
        let mut out: Vec<(u64, u64, Path)> = self
            .store
            .list(Some(&chunks_prefix(id)))
            .try_filter_map(|meta| async move {
                let offset = meta.location.filename().and_then(|n| n.parse::<u64>().ok());
                Ok(offset.map(|o| (o, meta.size, meta.location)))
            })
            .try_collect()
            .await?;
        out.sort_by_key(|(offset, _, _)| *offset);
        Ok(out)
    }

    /// Append a chunk. `start`, when the client sent a `Content-Range`, must be where the
    /// upload ends now; otherwise `RangeInvalid` (the spec's 416).
    pub async fn append_upload<S, E>(
        &self,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<UploadSession>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut session = self.upload_status(id).await?;
        if let Some(start) = start
            && start != session.size
        {
            return Err(StorageError::RangeInvalid {
                start,
                size: session.size,
            });
        }
        let path = Path::from(format!("uploads/{id}/chunks/{:020}", session.size));
        let mut upload = object_store::WriteMultipart::new_with_chunk_size(
            self.store.put_multipart(&path).await?,
            self.part_size,
        );
        let mut body = body;
        let mut written = 0u64;
        // A PATCH at offset 0 without Content-Range is how docker, skopeo and containerd
        // stream a whole blob: hash it on the way, so the PUT can rename it. Chunking
        // clients send Content-Range; their chunks are hashed once, at the PUT.
        let mut hasher = (session.size == 0 && start.is_none()).then(Sha256::new);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = upload.abort().await;
                    return Err(StorageError::Body(e.to_string()));
                }
            };
            written += chunk.len() as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            upload.wait_for_capacity(4).await?;
            upload.put(chunk);
        }
        if written == 0 {
            let _ = upload.abort().await;
            return Ok(session);
        }
        upload.finish().await?;
        if let Some(h) = hasher {
            // Best effort: without it, the PUT copies the chunk as it would anyway.
            let digest = Digest::from_hasher(h).to_string();
            let _ = self
                .store
                .put(
                    &first_chunk_digest_path(id),
                    PutPayload::from(digest.into_bytes()),
                )
                .await;
        }
        session.size += written;
        Ok(session)
    }

    /// Finish an upload with its last piece (the PUT's body, often the whole blob): the
    /// chunks received so far, in order, then `last`, must hash to `expected`. They are
    /// streamed once, straight into the blob's staging object; the blob then appears and
    /// the session is gone. On a mismatch no blob appears and the session stays as it was
    /// (without `last`), so the client may retry.
    pub async fn finish_upload<S, E>(
        &self,
        id: &str,
        start: Option<u64>,
        last: S,
        expected: &Digest,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.upload_status(id).await?;
        let chunks = self.chunks(id).await?;
        let mut end = 0;
        for (offset, len, _) in &chunks {
            if *offset != end {
                return Err(StorageError::RangeInvalid {
                    start: *offset,
                    size: end,
                });
            }
            end += len;
        }
        if let Some(start) = start
            && start != end
        {
            return Err(StorageError::RangeInvalid { start, size: end });
        }
        let mut last = Box::pin(last.map(|r| r.map_err(|e| StorageError::Body(e.to_string()))));
        let first_piece = last.next().await;
        if first_piece.is_none()
            && let [(0, size, path)] = chunks.as_slice()
            && self.first_chunk_digest(id).await.as_ref() == Some(expected)
        {
            // The one chunk is the blob, hashed as it arrived: rename, do not copy.
            self.publish_blob(path, expected, ClaimKind::Told).await?;
            let size = *size;
            self.cancel_upload(id).await?;
            return Ok(size);
        }
        // One chunk object after the other, each streamed: never the whole blob in memory.
        let reader = self.clone();
        let earlier = stream::iter(chunks)
            .then(move |(_, _, path)| {
                let reader = reader.clone();
                async move { Ok::<_, StorageError>(reader.read_object(&path, None).await?.1) }
            })
            .try_flatten();
        let last = stream::iter(first_piece).chain(last);
        let size = self
            .commit_stream(expected, earlier.chain(last).boxed(), ClaimKind::Told)
            .await?;
        self.cancel_upload(id).await?;
        Ok(size)
    }

    async fn first_chunk_digest(&self, id: &str) -> Option<Digest> {
        let bytes = self
            .store
            .get(&first_chunk_digest_path(id))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// Forget an upload and its chunks.
    pub async fn cancel_upload(&self, id: &str) -> Result<()> {
        if !valid_id(id) {
            return Err(StorageError::NotFound(format!("upload {id}")));
        }
        let prefix = Path::from(format!("uploads/{id}"));
        let paths: Vec<Path> = self
            .list_under(&prefix)
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect();
        if paths.is_empty() {
            return Err(StorageError::NotFound(format!("upload {id}")));
        }
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
