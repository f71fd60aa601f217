//! The layer checks of a copy into kiln's store, the same `kiln load` makes: every layer
//! that moves streams through a `LayerCheck` as it arrives (see `blobs`), and before
//! anything becomes visible each image's config must list those diffIDs, in order, for
//! layers compressed as their media types say. Layers the store already holds were checked
//! when they entered it; their diffIDs come from the images there that use them, or, for a
//! layer no image uses, from reading it again.

use std::{
    collections::{HashMap, HashSet},
    io::Read,
};

use futures::{StreamExt, TryStreamExt};
use kiln_store::{
    CONFIG_LIMIT, Compression, DOCUMENT_LIMIT, Descriptor, Digest, ImageConfig, ImageLayout,
    LayerFacts, Manifest, check_layer, check_layer_blob, check_layer_count,
    spec::{self, DocumentKind},
};

use super::blobs::Staged;
use crate::client::{ClientError, Result};

/// What a copy into the store must check: the images it brings, and their layers.
pub(super) struct LayerChecks {
    /// The source, named in errors.
    source: String,
    images: Vec<Manifest>,
    layers: HashSet<Digest>,
}

impl LayerChecks {
    pub fn new(source: String, images: Vec<Manifest>) -> LayerChecks {
        let layers = images
            .iter()
            .flat_map(|m| m.layers.iter().map(|l| l.digest.clone()))
            .collect();
        LayerChecks {
            source,
            images,
            layers,
        }
    }

    /// When `digest` is a layer to check: the name its check goes by in errors.
    pub fn check_for(&self, digest: &Digest) -> Option<String> {
        self.layers
            .contains(digest)
            .then(|| self.layer_name(digest))
    }

    fn layer_name(&self, digest: &Digest) -> String {
        format!("layer {digest} from {}", self.source)
    }

    /// Every image against its config, once every blob arrived and before any becomes
    /// visible in `layout`.
    pub async fn verify(&self, layout: &ImageLayout, staged: &[Staged], jobs: usize) -> Result<()> {
        let mut facts: HashMap<Digest, LayerFacts> = staged
            .iter()
            .filter_map(|s| Some((s.blob.digest.clone(), s.layer.clone()?)))
            .collect();
        let missing: HashSet<Digest> = self
            .layers
            .iter()
            .filter(|d| !facts.contains_key(*d))
            .cloned()
            .collect();
        if !missing.is_empty() {
            facts.extend(self.stored_facts(layout, missing, jobs).await?);
        }
        let configs: HashMap<&Digest, &Staged> =
            staged.iter().map(|s| (&s.blob.digest, s)).collect();
        for manifest in &self.images {
            let config = self.config(
                layout,
                &manifest.config,
                configs.get(&manifest.config.digest),
            )?;
            let config_name = format!("config {} from {}", manifest.config.digest, self.source);
            check_layer_count(
                &config_name,
                config.rootfs.diff_ids.len(),
                manifest.layers.len(),
            )?;
            for (layer, expected) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
                let found = facts.get(&layer.digest).ok_or_else(|| {
                    ClientError::Usage(format!("{} was not checked", layer.digest))
                })?;
                check_layer(
                    &self.layer_name(&layer.digest),
                    found,
                    &layer.digest,
                    expected,
                    Some(&layer.media_type),
                )?;
            }
        }
        Ok(())
    }

    /// Facts about layers the store already holds: the diffIDs its images record for them
    /// (checked when those images entered), or a fresh check of the stored blob, several
    /// at a time.
    async fn stored_facts(
        &self,
        layout: &ImageLayout,
        missing: HashSet<Digest>,
        jobs: usize,
    ) -> Result<HashMap<Digest, LayerFacts>> {
        let (owned, wanted) = (layout.clone(), missing.clone());
        let known = tokio::task::spawn_blocking(move || known_diff_ids(&owned, &wanted))
            .await
            .expect("diffID lookup task");
        let mut out = HashMap::new();
        let mut unknown = Vec::new();
        for digest in missing {
            match known.get(&digest) {
                Some(diff_id) => {
                    let compression = stored_compression(layout, &digest)?;
                    let facts = LayerFacts {
                        diff_id: Some(diff_id.clone()),
                        compression,
                    };
                    out.insert(digest, facts);
                }
                None => unknown.push(digest),
            }
        }
        let checked: Vec<(Digest, LayerFacts)> = futures::stream::iter(unknown)
            .map(|digest| {
                let blobs = layout.blobs().clone();
                let what = format!("stored layer {digest}");
                tokio::task::spawn_blocking(move || -> Result<(Digest, LayerFacts)> {
                    let file = blobs.open_blob(&digest)?;
                    Ok((digest, check_layer_blob(file, &what)?))
                })
            })
            .buffer_unordered(jobs.max(1))
            .map(|joined| joined.expect("layer check task"))
            .try_collect()
            .await?;
        out.extend(checked);
        Ok(out)
    }

    /// An image's config, from its staging file or from the store.
    fn config(
        &self,
        layout: &ImageLayout,
        descriptor: &Descriptor,
        staged: Option<&&Staged>,
    ) -> Result<ImageConfig> {
        let digest = &descriptor.digest;
        let what = format!("config {digest} from {}", self.source);
        let bytes = match staged {
            Some(staged) => {
                let path = staged.blob.path();
                let mut bytes = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(CONFIG_LIMIT + 1).read_to_end(&mut bytes))
                    .map_err(|e| ClientError::io(format!("reading {}", path.display()), e))?;
                if bytes.len() as u64 > CONFIG_LIMIT {
                    return Err(kiln_store::Error::BadImage {
                        what,
                        detail: format!("larger than the {CONFIG_LIMIT}-byte limit for a config"),
                    }
                    .into());
                }
                bytes
            }
            None => layout.blobs().read_verified(digest, CONFIG_LIMIT)?,
        };
        Ok(spec::from_json(&bytes, &what)?)
    }
}

/// A stored blob's compression, by its magic bytes.
fn stored_compression(layout: &ImageLayout, digest: &Digest) -> Result<Compression> {
    let mut magic = Vec::new();
    layout
        .blobs()
        .open_blob(digest)?
        .take(4)
        .read_to_end(&mut magic)
        .map_err(|e| ClientError::io(format!("reading blob {digest}"), e))?;
    Ok(Compression::from_magic(&magic))
}

/// The diffIDs the layout's images record for the `wanted` layers. Anything unreadable is
/// passed over: a layer left unknown is checked again instead.
fn known_diff_ids(layout: &ImageLayout, wanted: &HashSet<Digest>) -> HashMap<Digest, Digest> {
    let mut out = HashMap::new();
    let Ok(index) = layout.index() else {
        return out;
    };
    let mut stack: Vec<(Descriptor, usize)> = index.manifests.into_iter().map(|d| (d, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((descriptor, depth)) = stack.pop() {
        if out.len() == wanted.len() {
            break;
        }
        if depth > 8 || !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        let Ok(bytes) = layout
            .blobs()
            .read_verified(&descriptor.digest, DOCUMENT_LIMIT)
        else {
            continue;
        };
        let what = format!("manifest {}", descriptor.digest);
        match spec::document_kind(&bytes, Some(&descriptor.media_type), &what) {
            Ok(DocumentKind::Manifest) => {
                let Ok(manifest) = spec::from_json::<Manifest>(&bytes, &what) else {
                    continue;
                };
                if !manifest.layers.iter().any(|l| wanted.contains(&l.digest)) {
                    continue;
                }
                let config = layout
                    .blobs()
                    .read_verified(&manifest.config.digest, CONFIG_LIMIT)
                    .ok()
                    .and_then(|b| spec::from_json::<ImageConfig>(&b, &what).ok());
                let Some(config) = config else { continue };
                if config.rootfs.diff_ids.len() != manifest.layers.len() {
                    continue;
                }
                for (layer, diff_id) in manifest.layers.iter().zip(config.rootfs.diff_ids) {
                    if wanted.contains(&layer.digest) {
                        out.insert(layer.digest.clone(), diff_id);
                    }
                }
            }
            Ok(DocumentKind::Index) => {
                if let Ok(index) = spec::from_json::<kiln_store::Index>(&bytes, &what) {
                    stack.extend(index.manifests.into_iter().map(|d| (d, depth + 1)));
                }
            }
            Err(_) => {}
        }
    }
    out
}
