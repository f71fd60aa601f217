//! Per-repository records: which blobs and manifests a repository holds, and its tags.
//! Manifests are blobs like any other (content-addressed, shared); a repository only
//! holds small link objects pointing at them.
//!
//! ```text
//! repositories/<name>/_layers/<alg>/<hex>                  a blob this repository may serve
//! repositories/<name>/_manifests/revisions/<alg>/<hex>     {"mediaType": …}
//! repositories/<name>/_manifests/tags/<tag>                {"digest": …, "mediaType": …}
//! repositories/<name>/_referrers/<alg>/<subject>/<alg>/<hex>   the referrer's descriptor
//!
//! `<alg>` is `sha256`, or `sha512` for what a client addressed by a sha512 digest.
//! ```
//!
//! Name components cannot start with `_`, so these never collide with a nested name.
//! Callers pass names and tags already validated against the spec's grammar (the
//! `Reference` rules in kiln-store): no `..`, no empty segments, tags without `/`.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use kiln_store::{Algorithm, Digest};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use serde::{Deserialize, Serialize};

use super::{ClaimKind, RegistryStorage, Result, StorageError};

/// A manifest as stored: its exact bytes, digest and media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revision {
    media_type: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagRecord {
    digest: Digest,
    media_type: String,
}

fn layer_link(repo: &str, digest: &Digest) -> Path {
    Path::from(format!(
        "repositories/{repo}/_layers/{}/{}",
        digest.algorithm(),
        digest.hex()
    ))
}

fn revision(repo: &str, digest: &Digest) -> Path {
    Path::from(format!(
        "repositories/{repo}/_manifests/revisions/{}/{}",
        digest.algorithm(),
        digest.hex()
    ))
}

fn tags_dir(repo: &str) -> Path {
    Path::from(format!("repositories/{repo}/_manifests/tags"))
}

fn tag_path(repo: &str, tag: &str) -> Path {
    tags_dir(repo).join(tag)
}

impl RegistryStorage {
    /// Record that `repo` holds `digest` (after an upload or a cross-repository mount).
    pub async fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.store
            .put(&layer_link(repo, digest), PutPayload::from_static(b""))
            .await?;
        Ok(())
    }

    pub async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool> {
        exists(self.store.as_ref(), &layer_link(repo, digest)).await
    }

    pub async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.store
            .delete(&layer_link(repo, digest))
            .await
            .map_err(|e| StorageError::from_backend(format!("blob {digest} in {repo}"), e))
    }

    /// Store a manifest's bytes as a blob, link it into `repo`, and point `tag` at it.
    /// It is addressed in `algorithm` (sha256 unless the client pushed it by a sha512
    /// digest). Validation (media type, referenced blobs) is the caller's job: storage
    /// only stores.
    pub async fn put_manifest(
        &self,
        repo: &str,
        bytes: Bytes,
        media_type: &str,
        algorithm: Algorithm,
        tag: Option<&str>,
    ) -> Result<Digest> {
        let digest = Digest::of_with(algorithm, &bytes);
        let body = stream::iter([Ok(bytes)]);
        self.commit_stream(&digest, body, ClaimKind::Writing)
            .await?;
        // Claimed before it is written: a collector deleting an older copy of this
        // revision finishes first, and none deletes the new one.
        let rev_path = revision(repo, &digest);
        self.claim_settled(&rev_path, ClaimKind::Writing).await?;
        let rev = serde_json::to_vec(&Revision {
            media_type: media_type.to_string(),
        })
        .expect("serialisable");
        self.store.put(&rev_path, PutPayload::from(rev)).await?;
        if let Some(tag) = tag {
            // The tag is written last: a crash before it leaves no tag pointing at nothing.
            let record = serde_json::to_vec(&TagRecord {
                digest: digest.clone(),
                media_type: media_type.to_string(),
            })
            .expect("serialisable");
            self.store
                .put(&tag_path(repo, tag), PutPayload::from(record))
                .await?;
        }
        Ok(digest)
    }

    /// Claim (`Writing`) a manifest of `repo` against garbage collection (its record and its bytes),
    /// waiting while a collector deletes it; then `None` if `repo` does not hold it.
    pub async fn claim_manifest(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        self.claim_settled(&revision(repo, digest), ClaimKind::Writing)
            .await?;
        self.claim_settled(&Self::blob_path(digest), ClaimKind::Writing)
            .await?;
        match self.get_manifest(repo, &digest.to_string()).await {
            Ok(m) => Ok(Some(m)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Claim (`Writing`) a blob against garbage collection, waiting while a collector deletes it;
    /// then its size if `repo` holds it, `None` otherwise.
    pub async fn claim_linked_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        self.claim_settled(&Self::blob_path(digest), ClaimKind::Writing)
            .await?;
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        self.blob_size(digest).await
    }

    /// Claim a manifest looked up by digest (a HEAD): `Collecting` while a collector
    /// deletes it.
    pub async fn claim_revision(&self, repo: &str, digest: &Digest) -> Result<super::Claim> {
        let rev = self.claim(&revision(repo, digest), ClaimKind::Told).await?;
        let blob = self
            .claim(&Self::blob_path(digest), ClaimKind::Told)
            .await?;
        Ok(if rev == super::Claim::Held && blob == super::Claim::Held {
            super::Claim::Held
        } else {
            super::Claim::Collecting
        })
    }

    /// A manifest by tag or by digest, if `repo` holds it.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<StoredManifest> {
        let not_found = || StorageError::NotFound(format!("manifest {repo}:{reference}"));
        let (digest, media_type) = match reference.parse::<Digest>() {
            Ok(digest) => {
                let rev = read_json::<Revision>(self.store.as_ref(), &revision(repo, &digest))
                    .await?
                    .ok_or_else(not_found)?;
                (digest, rev.media_type)
            }
            Err(_) => {
                let tag = read_json::<TagRecord>(self.store.as_ref(), &tag_path(repo, reference))
                    .await?
                    .ok_or_else(not_found)?;
                (tag.digest, tag.media_type)
            }
        };
        let (_, body) = self.get_blob(&digest, None).await?;
        let chunks: Vec<Bytes> = body.try_collect().await?;
        let bytes = Bytes::from(chunks.concat());
        // Manifests are read whole and small; check them on the way out too.
        let actual = Digest::of_with(digest.algorithm(), &bytes);
        if actual != digest {
            return Err(StorageError::DigestInvalid {
                expected: digest,
                actual,
            });
        }
        Ok(StoredManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Record that the manifest `referrer` (a descriptor) refers to `subject`, for the
    /// referrers API. Kept even if the subject is not (yet) pushed, as the spec asks.
    pub async fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &kiln_store::Descriptor,
    ) -> Result<()> {
        let path = Path::from(format!(
            "repositories/{repo}/_referrers/{}/{}/{}/{}",
            subject.algorithm(),
            subject.hex(),
            referrer.digest.algorithm(),
            referrer.digest.hex()
        ));
        let json = serde_json::to_vec(referrer).expect("serialisable");
        self.store.put(&path, PutPayload::from(json)).await?;
        Ok(())
    }

    /// The descriptors of every manifest in `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<kiln_store::Descriptor>> {
        let prefix = Path::from(format!(
            "repositories/{repo}/_referrers/{}/{}",
            subject.algorithm(),
            subject.hex()
        ));
        let mut out = Vec::new();
        for path in self
            .list_under(&prefix)
            .await?
            .into_iter()
            .map(|m| m.location)
        {
            let referrer: Option<kiln_store::Descriptor> =
                read_json(self.store.as_ref(), &path).await?;
            // A referrer whose manifest was deleted from the repository is no longer listed.
            if let Some(d) = referrer
                && exists(self.store.as_ref(), &revision(repo, &d.digest)).await?
            {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository that holds a manifest, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let prefix = Path::from("repositories");
        let names: std::collections::BTreeSet<String> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|m| async move {
                let path = m.location.as_ref().to_string();
                let rest = path.strip_prefix("repositories/").unwrap_or(&path);
                Ok(rest
                    .split_once("/_manifests/")
                    .map(|(name, _)| name.to_string()))
            })
            .try_collect()
            .await?;
        Ok(names.into_iter().collect())
    }

    /// Whether `repo` holds anything: a manifest, a tag or a blob link (a nested
    /// repository `repo/x` does not count).
    pub async fn repository_exists(&self, repo: &str) -> Result<bool> {
        for part in ["_manifests", "_layers"] {
            let prefix = Path::from(format!("repositories/{repo}/{part}"));
            let mut listing = self.store.list(Some(&prefix));
            while let Some(entry) = listing.next().await {
                match entry {
                    Ok(_) => return Ok(true),
                    // Vanished while listed (a deletion beside us): look further.
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(false)
    }

    /// The repositories that hold the blob `digest` (a link to it), sorted. Lists every
    /// repository's links: for the rare request that must search them.
    pub async fn repositories_holding(&self, digest: &Digest) -> Result<Vec<String>> {
        let suffix = format!("/_layers/{}/{}", digest.algorithm(), digest.hex());
        let mut holders: Vec<String> = self
            .list_under(&Path::from("repositories"))
            .await?
            .into_iter()
            .filter_map(|m| {
                let path = m.location.as_ref();
                let rest = path.strip_prefix("repositories/")?;
                rest.strip_suffix(suffix.as_str()).map(str::to_string)
            })
            .collect();
        holders.sort();
        holders.dedup();
        Ok(holders)
    }

    /// The repository's tags, sorted (the spec's lexical order).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .store
            .list(Some(&tags_dir(repo)))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await?;
        tags.sort();
        Ok(tags)
    }

    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        self.store
            .delete(&tag_path(repo, tag))
            .await
            .map_err(|e| StorageError::from_backend(format!("tag {repo}:{tag}"), e))
    }

    /// Remove a manifest from `repo`, with every tag that points at it.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.store
            .delete(&revision(repo, digest))
            .await
            .map_err(|e| StorageError::from_backend(format!("manifest {repo}@{digest}"), e))?;
        let tags = self.tags(repo).await?;
        let store = self.store.clone();
        let stale: Vec<String> = stream::iter(tags)
            .filter_map(|tag| {
                let store = store.clone();
                let repo = repo.to_string();
                async move {
                    let record =
                        read_json::<TagRecord>(store.as_ref(), &tag_path(&repo, &tag)).await;
                    match record {
                        Ok(Some(r)) if &r.digest == digest => Some(tag),
                        _ => None,
                    }
                }
            })
            .collect()
            .await;
        for tag in stale {
            self.delete_tag(repo, &tag).await?;
        }
        Ok(())
    }
}

async fn exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<T>> {
    let bytes = match store.get(path).await {
        Ok(got) => got.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StorageError::Body(format!("corrupt record {path}: {e}")))
}
