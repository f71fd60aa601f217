//! `copy`: move one image (or a whole index) from a `Source` to a `Destination` — a
//! registry, or an OCI layout on disk (kiln's store, an `oci:` directory, the staging
//! layout behind an archive). Blobs go first, several at a time, each verified on the
//! way; into kiln's store, every image also passes the layer checks `kiln load` makes
//! (`layers`); manifests go last, children before parents, so a destination never names
//! an image whose parts are missing. `transport` turns skopeo-style names into these.

mod blobs;
mod created;
mod layers;
pub mod transport;

use std::{collections::HashSet, future::Future, pin::Pin, sync::Arc};

use futures::{StreamExt, TryStreamExt};
use kiln_store::{
    DOCUMENT_LIMIT, Descriptor, Digest, ImageLayout, Index, Manifest, Platform,
    spec::{self, DocumentKind},
};

use crate::client::{ClientError, KnownBlobs, Repository, Result};

pub use blobs::BlobOutcome;

/// Where an image comes from.
pub enum Source {
    /// An OCI layout (kiln's store, an `oci:` directory) and the index entry chosen.
    Layout {
        layout: ImageLayout,
        top: Box<Descriptor>,
        /// What the layout is (`oci:DIR`, `oci-archive:FILE`, …), for messages.
        name: String,
    },
    /// A registry repository and a tag or digest in it.
    Remote { repo: Repository, reference: String },
}

/// Where an image goes.
pub enum Destination {
    /// An OCI layout; `name` is the `ref.name` annotation the image gets, if any.
    /// `check_layers` (kiln's store) asks for the layer checks of `kiln load`: every
    /// layer's paths and diffID, before anything becomes visible. Other layouts are not
    /// unpacked by kiln: their blobs are checked against digest and size only.
    Layout {
        layout: ImageLayout,
        name: Option<String>,
        check_layers: bool,
    },
    /// A registry repository; with no tag the image is pushed by digest.
    Remote {
        repo: Repository,
        tag: Option<String>,
    },
}

/// Told about each blob as it moves; the CLI draws bars or prints lines.
pub trait Progress: Send + Sync {
    fn started(&self, digest: &Digest, size: u64);
    fn advanced(&self, digest: &Digest, bytes: u64);
    fn finished(&self, digest: &Digest, outcome: &BlobOutcome);
}

/// A `Progress` that says nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: &Digest, _: u64) {}
    fn advanced(&self, _: &Digest, _: u64) {}
    fn finished(&self, _: &Digest, _: &BlobOutcome) {}
}

#[derive(Clone)]
pub struct CopyOptions {
    /// The platform picked from an index (unless `all_platforms`).
    pub platform: Platform,
    /// Copy an index with every image it lists, instead of picking one.
    pub all_platforms: bool,
    /// Blobs moved at the same time.
    pub jobs: usize,
    /// Which repository of a registry last held a blob, to mount instead of upload.
    pub known: Option<KnownBlobs>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platform: Platform::host(),
            all_platforms: false,
            jobs: 4,
            known: None,
        }
    }
}

/// What was copied.
#[derive(Debug)]
pub struct Copied {
    /// What the source named (an index when the source had one).
    pub source_top: Descriptor,
    /// What the destination now names: the same, or the platform's manifest.
    pub top: Descriptor,
    pub blobs: usize,
    pub bytes: u64,
}

/// A document (manifest or index) read from the source, with its descriptor.
struct Document {
    descriptor: Descriptor,
    bytes: Vec<u8>,
}

pub async fn copy(
    source: &Source,
    destination: &Destination,
    options: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<Copied> {
    let top = source_top(source).await?;
    let source_top = top.descriptor.clone();
    let mut plan = Plan::default();
    let top = plan.collect(source, top, options, 0).await?;
    let checks = match destination {
        Destination::Layout {
            check_layers: true, ..
        } => Some(layers::LayerChecks::new(
            source.name(),
            std::mem::take(&mut plan.images),
        )),
        _ => None,
    };

    let moved: Vec<(u64, Option<blobs::Staging>)> = futures::stream::iter(plan.blobs.iter())
        .map(|descriptor| {
            let check = checks
                .as_ref()
                .and_then(|c| c.check_for(&descriptor.digest));
            blobs::transfer(source, destination, descriptor, options, &progress, check)
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    let mut bytes = 0;
    let mut staged = Vec::new();
    for (n, staging) in moved {
        bytes += n;
        if let Some(staging) = staging {
            staged.push(staging.await.expect("blob sync task")?);
        }
    }
    // Every blob arrived and checked out, and every image passed its layer checks: only
    // now does any become visible.
    if let Destination::Layout { layout, .. } = destination {
        if let Some(checks) = &checks {
            checks.verify(layout, &staged, options.jobs).await?;
        }
        let blobs = layout.blobs().clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for staged in staged {
                let digest = staged.blob.digest.clone();
                staged.blob.commit(&blobs, Some(&digest))?;
            }
            Ok(())
        })
        .await
        .expect("blob commit task")?;
    }

    for document in &plan.documents {
        let last = document.descriptor.digest == top.digest;
        put_document(destination, document, last).await?;
    }
    Ok(Copied {
        source_top,
        top,
        blobs: plan.blobs.len(),
        bytes,
    })
}

/// Indexes nest at most this deep below the top document.
pub const MAX_DEPTH: usize = 8;
/// Documents (manifests and indexes) one copy reads at most: a multi-platform image with
/// attestations has a few dozen; an index that fans out further is refused, not walked.
pub const MAX_DOCUMENTS: usize = 1000;
/// Their bytes in all (each is at most 4 MiB, and all are held until the copy ends).
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;

/// Everything one copy moves: blobs (configs and layers, once each) and documents (each
/// read once, however many indexes list it), children before the indexes that list them.
#[derive(Default)]
struct Plan {
    blobs: Vec<Descriptor>,
    seen: HashSet<Digest>,
    documents: Vec<Document>,
    /// Every image manifest met, for the layer checks.
    images: Vec<Manifest>,
    /// Documents read so far.
    read: HashSet<Digest>,
    /// Documents read or to be read (their indexes passed `bound`), and their bytes.
    planned: HashSet<Digest>,
    planned_bytes: u64,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl Plan {
    /// Walk a document: a manifest adds its blobs; an index adds its children (or, when
    /// one platform was asked for, is replaced by that platform's manifest).
    fn collect<'a>(
        &'a mut self,
        source: &'a Source,
        document: Document,
        options: &'a CopyOptions,
        depth: usize,
    ) -> Boxed<'a, Descriptor> {
        Box::pin(async move {
            let digest = document.descriptor.digest.clone();
            let what = format!("manifest {digest}");
            if depth > MAX_DEPTH {
                return Err(kiln_store::Error::BadImage {
                    what,
                    detail: format!("indexes nest more than {MAX_DEPTH} deep"),
                }
                .into());
            }
            self.read.insert(digest.clone());
            if self.planned.insert(digest.clone()) {
                self.planned_bytes += document.bytes.len() as u64;
            }
            let kind = spec::document_kind(
                &document.bytes,
                Some(&document.descriptor.media_type),
                &what,
            )?;
            match kind {
                DocumentKind::Manifest => {
                    let manifest: Manifest = spec::from_json(&document.bytes, &what)?;
                    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                        if self.seen.insert(blob.digest.clone()) {
                            self.blobs.push(blob.clone());
                        }
                    }
                    self.images.push(manifest);
                }
                DocumentKind::Index => {
                    let index: Index = spec::from_json(&document.bytes, &what)?;
                    if !options.all_platforms && depth == 0 {
                        let chosen = index.select(&options.platform).ok_or_else(|| {
                            ClientError::Usage(format!(
                                "{what} has no image for {}/{}{} (pass --all-platforms to copy \
                                 the whole index, or --platform to pick another)",
                                options.platform.os,
                                options.platform.architecture,
                                options
                                    .platform
                                    .variant
                                    .as_deref()
                                    .map(|v| format!("/{v}"))
                                    .unwrap_or_default()
                            ))
                        })?;
                        self.bound(&what, [chosen])?;
                        let mut child = fetch_document(source, chosen).await?;
                        child.descriptor.platform = chosen.platform.clone();
                        return self.collect(source, child, options, depth + 1).await;
                    }
                    // An index may list a child many times (and its children may list the
                    // same ones again): each is read once.
                    self.bound(&what, &index.manifests)?;
                    for child in &index.manifests {
                        if self.read.contains(&child.digest) {
                            continue;
                        }
                        let child = fetch_document(source, child).await?;
                        self.collect(source, child, options, depth + 1).await?;
                    }
                }
            }
            let descriptor = document.descriptor.clone();
            if !self.documents.iter().any(|d| d.descriptor.digest == digest) {
                self.documents.push(document);
            }
            Ok(descriptor)
        })
    }

    /// Plan an index's children, or refuse the index before any is read when they would
    /// take the copy past `MAX_DOCUMENTS` or `MAX_DOCUMENT_BYTES` (by the sizes their
    /// descriptors declare; `fetch_document` holds each to its declared size).
    fn bound<'d>(
        &mut self,
        what: &str,
        children: impl IntoIterator<Item = &'d Descriptor> + Clone,
    ) -> Result<()> {
        let mut new = HashSet::new();
        let mut bytes = self.planned_bytes;
        for child in children.clone() {
            if !self.planned.contains(&child.digest) && new.insert(&child.digest) {
                bytes = bytes.saturating_add(child.size);
            }
        }
        let count = self.planned.len() + new.len();
        let detail = if count > MAX_DOCUMENTS {
            format!(
                "it would take the copy to {count} manifests and indexes; kiln reads at most \
                 {MAX_DOCUMENTS} per copy"
            )
        } else if bytes > MAX_DOCUMENT_BYTES {
            format!(
                "its manifests would take the copy to {bytes} bytes of manifests and indexes; \
                 kiln reads at most {} MiB per copy",
                MAX_DOCUMENT_BYTES >> 20
            )
        } else {
            for child in children {
                self.planned.insert(child.digest.clone());
            }
            self.planned_bytes = bytes;
            return Ok(());
        };
        Err(kiln_store::Error::BadImage {
            what: what.to_string(),
            detail,
        }
        .into())
    }
}

impl Source {
    /// The source as a user names it, for messages.
    fn name(&self) -> String {
        match self {
            Source::Layout { name, .. } => name.clone(),
            Source::Remote { repo, reference } => repo.display(reference),
        }
    }
}

async fn source_top(source: &Source) -> Result<Document> {
    match source {
        Source::Layout { top, .. } => fetch_document(source, top).await,
        Source::Remote { repo, reference } => {
            let response = repo.manifest(reference).await?;
            Ok(Document {
                descriptor: response.descriptor,
                bytes: response.bytes,
            })
        }
    }
}

/// A child manifest or index by its descriptor, digest and size checked.
async fn fetch_document(source: &Source, descriptor: &Descriptor) -> Result<Document> {
    let bytes = match source {
        Source::Layout { layout, .. } => layout
            .blobs()
            .read_verified(&descriptor.digest, DOCUMENT_LIMIT)?,
        Source::Remote { repo, .. } => repo.manifest(&descriptor.digest.to_string()).await?.bytes,
    };
    if bytes.len() as u64 != descriptor.size {
        return Err(kiln_store::Error::SizeMismatch {
            what: format!("manifest {}", descriptor.digest),
            expected: descriptor.size,
            actual: bytes.len() as u64,
        }
        .into());
    }
    let mut descriptor = descriptor.clone();
    descriptor.annotations = None;
    Ok(Document { descriptor, bytes })
}

/// Store one document; the top one (`last`) also gets the destination's name.
async fn put_document(destination: &Destination, document: &Document, last: bool) -> Result<()> {
    let descriptor = &document.descriptor;
    match destination {
        Destination::Layout { layout, name, .. } => {
            let stored = layout
                .blobs()
                .put_bytes_as(descriptor.digest.algorithm(), &document.bytes)?;
            debug_assert_eq!(stored, descriptor.digest);
            if last {
                layout.set_named(name.as_deref(), descriptor)?;
            }
        }
        Destination::Remote { repo, tag } => {
            let digest = descriptor.digest.to_string();
            let reference = match tag {
                Some(tag) if last => tag.as_str(),
                _ => digest.as_str(),
            };
            repo.put_manifest(reference, descriptor, &document.bytes)
                .await?;
        }
    }
    Ok(())
}
