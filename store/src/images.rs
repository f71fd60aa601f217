//! `ImageStore`: kiln's local images, an OCI image layout under `$KILN_ROOT/images` whose
//! `index.json` entries carry the full reference in `org.opencontainers.image.ref.name`.

use std::{
    collections::{BTreeSet, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::{
    Descriptor, Digest, Error, ImageConfig, ImageLayout, Index, LayoutLock, Manifest, Platform,
    Reference, Result,
    error::IoContext,
    media_type::{self, ANNOTATION_REF_NAME},
    spec::{self, DocumentKind},
};

/// Manifests, indexes and configs are JSON read whole; registries cap manifests at 4 MiB.
pub const DOCUMENT_LIMIT: u64 = 4 << 20;
pub const CONFIG_LIMIT: u64 = 32 << 20;

#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    layout: ImageLayout,
}

/// One line of `index.json`: a manifest or index, with its name if it has one.
#[derive(Clone, Debug)]
pub struct ImageEntry {
    pub descriptor: Descriptor,
    pub reference: Option<Reference>,
}

/// An image resolved to one platform: its manifest and config, parsed.
#[derive(Clone, Debug)]
pub struct Image {
    /// What `index.json` points at (a manifest, or an index holding it).
    pub top: Descriptor,
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl Image {
    /// Docker's IMAGE ID: the config digest.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<(Digest, u64)>,
    /// The untagged images dropped, by image ID (the config digest, as `kiln images`
    /// shows it; the manifest digest when the config cannot be read).
    pub untagged: Vec<Digest>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }
}

impl ImageStore {
    /// `$KILN_ROOT`, else `/var/lib/kiln` as root, else `$XDG_DATA_HOME/kiln` or
    /// `~/.local/share/kiln`.
    pub fn default_root() -> PathBuf {
        if let Some(root) = std::env::var_os("KILN_ROOT").filter(|v| !v.is_empty()) {
            return PathBuf::from(root);
        }
        let is_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if is_root {
            return PathBuf::from("/var/lib/kiln");
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(data).join("kiln");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".local/share/kiln")
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        let layout = ImageLayout::create(root.join("images"), &root)?;
        Ok(ImageStore { root, layout })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> &ImageLayout {
        &self.layout
    }

    pub fn blobs(&self) -> &crate::BlobStore {
        self.layout.blobs()
    }

    pub fn gc_lock(&self, exclusive: bool) -> Result<LayoutLock> {
        self.layout.gc_lock(exclusive)
    }

    pub fn entries(&self) -> Result<Vec<ImageEntry>> {
        Ok(self
            .layout
            .index()?
            .manifests
            .into_iter()
            .map(entry_of)
            .collect())
    }

    /// Find an image by reference (`busybox`, `host:5000/app:1`), by digest of its manifest
    /// or config, or by a unique prefix of either (at least 4 hex characters), as docker does.
    pub fn resolve(&self, name: &str) -> Result<ImageEntry> {
        let entries = self.entries()?;
        if let Ok(reference) = Reference::parse(name) {
            let found = entries.iter().find(|e| {
                e.reference.as_ref() == Some(&reference)
                    || (reference.tag().is_none()
                        && reference.digest() == Some(&e.descriptor.digest))
            });
            if let Some(found) = found {
                return Ok(found.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = Vec::new();
            for entry in &entries {
                let id = self.config_digest(&entry.descriptor).ok();
                let hit = entry.descriptor.digest.hex().starts_with(hex)
                    || id.as_ref().is_some_and(|d| d.hex().starts_with(hex));
                if hit {
                    matches.push(entry.clone());
                }
            }
            let distinct: BTreeSet<_> = matches.iter().map(|e| &e.descriptor.digest).collect();
            match distinct.len() {
                0 => {}
                1 => return Ok(matches.remove(0)),
                _ => {
                    return Err(Error::Ambiguous(format!(
                        "{name:?} matches {} images; give more of the ID",
                        distinct.len()
                    )));
                }
            }
        }
        Err(Error::ImageNotFound(name.to_string()))
    }

    /// The image behind an index entry, picking the host platform from an index.
    pub fn image(&self, top: &Descriptor) -> Result<Image> {
        self.image_for(top, &Platform::host())
    }

    pub fn image_for(&self, top: &Descriptor, platform: &Platform) -> Result<Image> {
        let manifest_descriptor = self.platform_manifest(top, platform)?;
        let manifest = self.read_manifest(&manifest_descriptor.digest)?;
        let config_bytes = self
            .blobs()
            .read_verified(&manifest.config.digest, CONFIG_LIMIT)?;
        let config: ImageConfig =
            spec::from_json(&config_bytes, &format!("config {}", manifest.config.digest))?;
        Ok(Image {
            top: top.clone(),
            manifest_descriptor,
            manifest,
            config,
        })
    }

    fn config_digest(&self, top: &Descriptor) -> Result<Digest> {
        let d = self.platform_manifest(top, &Platform::host())?;
        Ok(self.read_manifest(&d.digest)?.config.digest)
    }

    /// Follow indexes down to the manifest for `platform` (or the only one there is).
    pub fn platform_manifest(&self, top: &Descriptor, platform: &Platform) -> Result<Descriptor> {
        let mut current = top.clone();
        for _ in 0..8 {
            let bytes = self
                .blobs()
                .read_verified(&current.digest, DOCUMENT_LIMIT)?;
            let what = format!("manifest {}", current.digest);
            match spec::document_kind(&bytes, Some(&current.media_type), &what)? {
                DocumentKind::Manifest => return Ok(current),
                DocumentKind::Index => {
                    let index: Index = spec::from_json(&bytes, &what)?;
                    let chosen = index.select(platform).ok_or_else(|| Error::BadImage {
                        what: what.clone(),
                        detail: format!(
                            "no manifest for {}/{}",
                            platform.os, platform.architecture
                        ),
                    })?;
                    current = chosen.clone();
                }
            }
        }
        Err(Error::BadImage {
            what: top.digest.to_string(),
            detail: "indexes nest more than 8 deep".into(),
        })
    }

    pub fn read_manifest(&self, digest: &Digest) -> Result<Manifest> {
        let bytes = self.blobs().read_verified(digest, DOCUMENT_LIMIT)?;
        spec::from_json(&bytes, &format!("manifest {digest}"))
    }

    /// Point `reference` at `descriptor` (replacing what it pointed at), or, with no
    /// reference, record the image untagged unless it is already present.
    pub fn set(&self, reference: Option<&Reference>, descriptor: &Descriptor) -> Result<()> {
        self.layout.update_index(|index| {
            set_in_index(index, reference, descriptor);
            Ok(())
        })
    }

    /// Remove a tag; returns the descriptor it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Descriptor> {
        let full = reference.to_string();
        self.layout.update_index(|index| {
            let pos = index
                .manifests
                .iter()
                .position(|d| d.annotation(ANNOTATION_REF_NAME) == Some(full.as_str()))
                .ok_or_else(|| Error::ImageNotFound(reference.familiar()))?;
            Ok(index.manifests.remove(pos))
        })
    }

    /// Remove every index entry for this digest (tagged or not).
    pub fn remove_digest(&self, digest: &Digest) -> Result<Vec<ImageEntry>> {
        self.layout.update_index(|index| {
            let (gone, kept) = index.manifests.drain(..).partition(|d| &d.digest == digest);
            index.manifests = kept;
            Ok(gone.into_iter().map(entry_of).collect())
        })
    }

    /// Every blob that an index entry reaches: manifests, index children, configs, layers,
    /// and the subjects' referrers that the layout holds.
    pub fn reachable(&self, index: &Index) -> Result<HashSet<Digest>> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Descriptor> = index.manifests.clone();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            let is_doc =
                media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type);
            if !is_doc || !self.blobs().contains(&d.digest) {
                continue;
            }
            let bytes = self.blobs().read_verified(&d.digest, DOCUMENT_LIMIT)?;
            let what = format!("manifest {}", d.digest);
            match spec::document_kind(&bytes, Some(&d.media_type), &what)? {
                DocumentKind::Manifest => {
                    let m: Manifest = spec::from_json(&bytes, &what)?;
                    seen.insert(m.config.digest.clone());
                    seen.extend(m.layers.into_iter().map(|l| l.digest));
                }
                DocumentKind::Index => {
                    let i: Index = spec::from_json(&bytes, &what)?;
                    stack.extend(i.manifests);
                }
            }
        }
        Ok(seen)
    }

    /// Remove every blob that no index entry reaches, and stale staging files; with
    /// `drop_untagged` (prune), untagged entries go first. Holds the exclusive gc lock, so
    /// no load or import runs meanwhile.
    pub fn gc(&self, drop_untagged: bool, dry_run: bool) -> Result<GcReport> {
        self.gc_keeping(drop_untagged, dry_run, || Ok(HashSet::new()))
    }

    /// `gc`, also keeping the blobs `roots` names (a build cache's layers). `roots` is
    /// called under the exclusive gc lock, when no build is adding to what it reads.
    pub fn gc_keeping(
        &self,
        drop_untagged: bool,
        dry_run: bool,
        roots: impl FnOnce() -> Result<HashSet<Digest>>,
    ) -> Result<GcReport> {
        let _gc = self.gc_lock(true)?;
        let mut report = GcReport::default();
        let mut drop = |index: &mut Index| {
            if drop_untagged {
                index.manifests.retain(|d| {
                    let keep = d.annotation(ANNOTATION_REF_NAME).is_some();
                    if !keep {
                        let id = self.config_digest(d).unwrap_or_else(|_| d.digest.clone());
                        report.untagged.push(id);
                    }
                    keep
                });
            }
        };
        let index = if dry_run {
            let mut index = self.layout.index()?;
            drop(&mut index);
            index
        } else {
            self.layout.update_index(|index| {
                drop(index);
                Ok(index.clone())
            })?
        };
        let mut live = self.reachable(&index)?;
        live.extend(roots()?);
        for digest in self.blobs().list()? {
            if live.contains(&digest) {
                continue;
            }
            let size = self.blobs().size(&digest).unwrap_or(0);
            if !dry_run {
                self.blobs().remove(&digest)?;
            }
            report.removed.push((digest, size));
        }
        if !dry_run {
            // Nothing stages while we hold the lock: whatever is here was left by a crash.
            let staging = self.blobs().staging_dir();
            for entry in fs::read_dir(staging).ctx(|| format!("listing {}", staging.display()))? {
                let entry = entry.ctx(|| format!("listing {}", staging.display()))?;
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(report)
    }
}

fn entry_of(descriptor: Descriptor) -> ImageEntry {
    let reference = descriptor
        .annotation(ANNOTATION_REF_NAME)
        .and_then(|r| Reference::parse(r).ok());
    ImageEntry {
        descriptor,
        reference,
    }
}

pub(crate) fn set_in_index(index: &mut Index, reference: Option<&Reference>, target: &Descriptor) {
    set_named(index, reference.map(ToString::to_string).as_deref(), target);
}

/// Point the `ref.name` annotation `name` at `target` (replacing what it named), or
/// with no name, add `target` untagged unless the index already holds it.
pub(crate) fn set_named(index: &mut Index, name: Option<&str>, target: &Descriptor) {
    let mut entry = Descriptor::new(&target.media_type, target.digest.clone(), target.size);
    entry.platform = target.platform.clone();
    match name {
        Some(name) => {
            index
                .manifests
                .retain(|d| d.annotation(ANNOTATION_REF_NAME) != Some(name));
            // A tagged image needs no untagged twin.
            index.manifests.retain(|d| {
                d.digest != target.digest || d.annotation(ANNOTATION_REF_NAME).is_some()
            });
            entry.set_annotation(ANNOTATION_REF_NAME, name);
            index.manifests.push(entry);
        }
        None => {
            if !index.manifests.iter().any(|d| d.digest == target.digest) {
                index.manifests.push(entry);
            }
        }
    }
}
