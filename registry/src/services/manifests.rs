//! Manifest PUTs: what a manifest must satisfy before the registry stores it (JSON, media
//! type, the digest the client named, every blob or child manifest it names held by the
//! repository with the size the descriptor says) and the claims that keep those against
//! garbage collection. No HTTP here: the handler maps `ManifestError` to the API's codes.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use kiln_store::{
    Algorithm, Descriptor, Digest, Index, Manifest,
    spec::{self, DocumentKind},
};

use crate::{
    storage::{RegistryStorage, StorageError, WRITING_HOLD},
    wire::manifest_media_type,
};

/// How deep indexes may nest below the one being pushed (Distribution does not bound it;
/// nobody nests more than two).
const MAX_DEPTH: usize = 8;
/// Claims made at once.
const PARALLEL: usize = 8;

/// What a manifest PUT names: a tag, or the digest the manifest must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestReference {
    Tag(String),
    Digest(Digest),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    BlobUnknown(Digest),

    #[error("the URL says {url}, the manifest is {actual}")]
    DigestMismatch { url: Digest, actual: Digest },

    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A manifest the registry accepted.
#[derive(Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    /// The subject it refers to (`OCI-Subject`), if any.
    pub subject: Option<Digest>,
}

/// Check and store a manifest pushed to `repo`.
pub async fn put_manifest(
    storage: &RegistryStorage,
    repo: &str,
    bytes: Bytes,
    content_type: Option<&str>,
    reference: &ManifestReference,
) -> Result<StoredManifest, ManifestError> {
    let claimed_at = std::time::Instant::now();
    let media_type = media_type(&bytes, content_type)?;
    let invalid = |e: kiln_store::Error| ManifestError::Invalid(e.to_string());
    // Addressed in the algorithm the client named (a sha512 digest in the URL stores it
    // as sha512, so a GET by that digest finds it); by a tag, in sha256.
    let algorithm = match reference {
        ManifestReference::Digest(url) => url.algorithm(),
        ManifestReference::Tag(_) => Algorithm::Sha256,
    };
    let digest = Digest::of_with(algorithm, &bytes);
    let tag = match reference {
        ManifestReference::Digest(url) if *url != digest => {
            return Err(ManifestError::DigestMismatch {
                url: url.clone(),
                actual: digest,
            });
        }
        ManifestReference::Digest(_) => None,
        ManifestReference::Tag(t) => Some(t.as_str()),
    };
    let referrer =
        match spec::document_kind(&bytes, Some(&media_type), "manifest").map_err(invalid)? {
            DocumentKind::Manifest => {
                let m: Manifest = spec::from_json(&bytes, "manifest").map_err(invalid)?;
                claim_blobs(storage, repo, std::iter::once(&m.config).chain(&m.layers)).await?;
                // The spec: an image manifest's artifact type is its artifactType, else its
                // config's media type.
                m.subject.clone().map(|s| {
                    let artifact = m
                        .artifact_type
                        .clone()
                        .unwrap_or(m.config.media_type.clone());
                    (s, Some(artifact), m.annotations.clone())
                })
            }
            DocumentKind::Index => {
                let index: Index = spec::from_json(&bytes, "index").map_err(invalid)?;
                let mut seen = BTreeSet::new();
                claim_children(storage, repo, &index, 0, &mut seen).await?;
                index
                    .subject
                    .clone()
                    .map(|s| (s, index.artifact_type.clone(), index.annotations.clone()))
            }
        };
    // Claims held too long may no longer stop a collection: write nothing then.
    if claimed_at.elapsed() > WRITING_HOLD {
        return Err(StorageError::Busy(format!(
            "checking the manifest's references took over {}s",
            WRITING_HOLD.as_secs()
        ))
        .into());
    }
    // The referrer entry goes first: it is listed only once the manifest itself exists.
    let subject = match referrer {
        Some((subject, artifact_type, annotations)) => {
            let mut d = Descriptor::new(&media_type, digest.clone(), bytes.len() as u64);
            d.artifact_type = artifact_type;
            d.annotations = annotations;
            storage.add_referrer(repo, &subject.digest, &d).await?;
            Some(subject.digest)
        }
        None => None,
    };
    storage
        .put_manifest(repo, bytes, &media_type, algorithm, tag)
        .await?;
    Ok(StoredManifest { digest, subject })
}

/// The manifest's media type, by the rule both sides of the wire use
/// (`wire::manifest_media_type`); `schemaVersion` must be 2.
pub(crate) fn media_type(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<String, ManifestError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u32>,
    }
    let invalid = |s: String| Err(ManifestError::Invalid(s));
    let head: Head = match serde_json::from_slice(bytes) {
        Ok(head) => head,
        Err(e) => return invalid(format!("not JSON: {e}")),
    };
    if head.schema_version != Some(2) {
        return invalid("schemaVersion must be 2".into());
    }
    manifest_media_type(bytes, content_type).map_err(|e| ManifestError::Invalid(e.to_string()))
}

/// Claim every blob a manifest names; each must be in `repo` with the descriptor's size.
/// Foreign layers (with `urls`) live elsewhere and are not checked.
async fn claim_blobs<'a>(
    storage: &RegistryStorage,
    repo: &str,
    blobs: impl Iterator<Item = &'a Descriptor>,
) -> Result<(), ManifestError> {
    let local: Vec<(Digest, u64)> = blobs
        .filter(|b| b.urls.as_ref().is_none_or(|u| u.is_empty()))
        .map(|b| (b.digest.clone(), b.size))
        .collect();
    let repo = repo.to_string();
    stream::iter(local)
        .map(|(digest, expected)| {
            let (storage, repo) = (storage.clone(), repo.clone());
            async move {
                match storage.claim_linked_blob(&repo, &digest).await? {
                    None => Err(ManifestError::BlobUnknown(digest)),
                    Some(size) if size != expected => Err(ManifestError::Invalid(format!(
                        "the descriptor of {digest} says {expected} bytes, the blob has {size}"
                    ))),
                    Some(_) => Ok(()),
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await
}

/// Claim every manifest an index names, and everything those name in turn: a child may
/// be an untagged manifest that a collection running now would otherwise take, with its
/// layers. Each child must be in `repo`.
async fn claim_children(
    storage: &RegistryStorage,
    repo: &str,
    index: &Index,
    depth: usize,
    seen: &mut BTreeSet<Digest>,
) -> Result<(), ManifestError> {
    if depth > MAX_DEPTH {
        return Err(ManifestError::Invalid(format!(
            "indexes nest more than {MAX_DEPTH} levels deep"
        )));
    }
    for child in &index.manifests {
        if !seen.insert(child.digest.clone()) {
            continue;
        }
        let Some(m) = storage.claim_manifest(repo, &child.digest).await? else {
            return Err(ManifestError::BlobUnknown(child.digest.clone()));
        };
        let what = format!("manifest {}", child.digest);
        // The child was checked when it was pushed; here it only needs claiming.
        match spec::document_kind(&m.bytes, Some(&m.media_type), &what) {
            Ok(DocumentKind::Manifest) => {
                if let Ok(doc) = spec::from_json::<Manifest>(&m.bytes, &what) {
                    for blob in std::iter::once(&doc.config).chain(&doc.layers) {
                        storage.claim_linked_blob(repo, &blob.digest).await?;
                    }
                }
            }
            Ok(DocumentKind::Index) => {
                if let Ok(doc) = spec::from_json::<Index>(&m.bytes, &what) {
                    Box::pin(claim_children(storage, repo, &doc, depth + 1, seen)).await?;
                }
            }
            Err(_) => {}
        }
    }
    Ok(())
}
