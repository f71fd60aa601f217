//! `save`: stream images out as one tarball, each blob once however many images share it.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    io::{self, Write},
};

use tar::{EntryType, Header};

use super::{DockerManifestItem, INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT, REPOSITORIES};
use crate::{
    Compression, Descriptor, Digest, Encoder, Error, ImageEntry, ImageStore, Index, Reference,
    Result,
    error::IoContext,
    images::DOCUMENT_LIMIT,
    media_type::{self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME},
    spec::{self, DocumentKind, OciLayout},
};

#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Wrap the whole tarball (`kiln load` and skopeo detect it by magic bytes).
    pub compression: Compression,
    /// mtime of every archive entry (SOURCE_DATE_EPOCH, else 0): same images, same bytes.
    pub mtime: u64,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            compression: Compression::None,
            mtime: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

/// What the user asked to save: an image, and the name it was asked by (if a name).
pub struct SaveRequest {
    pub entry: ImageEntry,
    pub reference: Option<Reference>,
}

pub fn save<W: Write>(
    store: &ImageStore,
    requests: &[SaveRequest],
    out: W,
    options: &SaveOptions,
) -> Result<W> {
    let plan = Plan::new(store, requests)?;
    let out = Encoder::new(options.compression, out).ctx(|| "starting compression".into())?;
    let mut tar = tar::Builder::new(out);
    let mtime = options.mtime;

    append_bytes(&mut tar, OCI_LAYOUT, &plan.oci_layout, mtime)?;
    append_bytes(&mut tar, INDEX_JSON, &plan.index_json, mtime)?;
    append_bytes(&mut tar, MANIFEST_JSON, &plan.manifest_json, mtime)?;
    append_bytes(&mut tar, REPOSITORIES, &plan.repositories, mtime)?;
    append_dir(&mut tar, "blobs/", mtime)?;
    append_dir(&mut tar, "blobs/sha256/", mtime)?;
    for digest in &plan.blobs {
        append_blob(&mut tar, store.blobs(), digest, mtime)?;
    }
    let encoder = tar.into_inner().ctx(|| "finishing the archive".into())?;
    encoder.finish().ctx(|| "finishing compression".into())
}

/// Everything decided before the first byte goes out, so a missing blob fails early.
struct Plan {
    oci_layout: Vec<u8>,
    index_json: Vec<u8>,
    manifest_json: Vec<u8>,
    repositories: Vec<u8>,
    blobs: Vec<Digest>,
}

impl Plan {
    fn new(store: &ImageStore, requests: &[SaveRequest]) -> Result<Plan> {
        let mut index = Index::default();
        let mut blobs = Vec::new();
        let mut seen_blobs = HashSet::new();
        // manifest.json: one item per image (config digest), holding all its tags.
        let mut items: Vec<(Digest, DockerManifestItem)> = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut seen_top = BTreeSet::new();

        for request in requests {
            let top = &request.entry.descriptor;
            let image = store.image(top)?;
            for digest in closure(store, top)? {
                if seen_blobs.insert(digest.clone()) {
                    blobs.push(digest);
                }
            }
            let mut entry = Descriptor::new(&top.media_type, top.digest.clone(), top.size);
            if let Some(r) = &request.reference {
                entry.set_annotation(ANNOTATION_CONTAINERD_NAME, r.to_string());
                if let Some(tag) = r.tag() {
                    entry.set_annotation(ANNOTATION_REF_NAME, tag);
                }
            }
            let key = (
                entry.digest.clone(),
                request.reference.as_ref().map(|r| r.to_string()),
            );
            if seen_top.insert(key) {
                index.manifests.push(entry);
            }

            let id = image.id().clone();
            let item = match items.iter_mut().find(|(d, _)| d == &id) {
                Some((_, item)) => item,
                None => {
                    items.push((
                        id.clone(),
                        DockerManifestItem {
                            config: format!("blobs/sha256/{}", id.hex()),
                            repo_tags: Some(Vec::new()),
                            layers: image
                                .manifest
                                .layers
                                .iter()
                                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                                .collect(),
                        },
                    ));
                    &mut items.last_mut().expect("just pushed").1
                }
            };
            if let Some(r) = &request.reference
                && let Some(tag) = r.tag()
            {
                let familiar = r.familiar();
                let tags = item.repo_tags.get_or_insert_with(Vec::new);
                if !tags.contains(&familiar) {
                    tags.push(familiar);
                }
                if let Some(top_layer) = image.manifest.layers.last() {
                    repositories
                        .entry(r.familiar_repository())
                        .or_default()
                        .insert(tag.to_string(), top_layer.digest.hex().to_string());
                }
            }
        }
        let items: Vec<DockerManifestItem> = items.into_iter().map(|(_, i)| i).collect();
        Ok(Plan {
            oci_layout: spec::to_json(&OciLayout {
                image_layout_version: media_type::OCI_LAYOUT_VERSION.into(),
            }),
            index_json: spec::to_json(&index),
            manifest_json: serde_json::to_vec(&items).expect("serialisable"),
            repositories: serde_json::to_vec(&repositories).expect("serialisable"),
            blobs,
        })
    }
}

/// Every blob a top-level descriptor needs: itself, index children present in the store,
/// configs and layers. A missing child of an index is skipped (a single-platform pull keeps
/// only its own); a missing blob of a manifest is an error.
fn closure(store: &ImageStore, top: &Descriptor) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    let mut stack = vec![(top.clone(), true)];
    while let Some((d, required)) = stack.pop() {
        if !store.blobs().contains(&d.digest) {
            if required {
                return Err(Error::BadImage {
                    what: d.digest.to_string(),
                    detail: "blob is missing from the store".into(),
                });
            }
            continue;
        }
        out.push(d.digest.clone());
        let bytes = store.blobs().read_verified(&d.digest, DOCUMENT_LIMIT)?;
        let what = format!("manifest {}", d.digest);
        match spec::document_kind(&bytes, Some(&d.media_type), &what)? {
            DocumentKind::Index => {
                let index: Index = spec::from_json(&bytes, &what)?;
                stack.extend(index.manifests.into_iter().map(|c| (c, false)));
            }
            DocumentKind::Manifest => {
                let m: crate::Manifest = spec::from_json(&bytes, &what)?;
                for blob in std::iter::once(&m.config).chain(&m.layers) {
                    if !store.blobs().contains(&blob.digest) {
                        return Err(Error::BadImage {
                            what: what.clone(),
                            detail: format!("blob {} is missing from the store", blob.digest),
                        });
                    }
                    out.push(blob.digest.clone());
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn header(kind: EntryType, mode: u32, mtime: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

pub(super) fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mtime: u64,
) -> Result<()> {
    let mut h = header(EntryType::Regular, 0o444, mtime);
    h.set_size(bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
        .ctx(|| format!("writing {path}"))
}

/// `blobs/sha256/<hex>`, streamed from the blob store.
pub(super) fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    blobs: &crate::BlobStore,
    digest: &Digest,
    mtime: u64,
) -> Result<()> {
    let file = blobs.open_blob(digest)?;
    let size = file
        .metadata()
        .ctx(|| format!("reading blob {digest}"))?
        .len();
    let mut h = header(EntryType::Regular, 0o444, mtime);
    h.set_size(size);
    let path = format!("blobs/sha256/{}", digest.hex());
    // take(): the header promised `size` bytes, whatever happens to the file meanwhile.
    tar.append_data(&mut h, &path, io::Read::take(file, size))
        .ctx(|| format!("writing {path}"))
}

pub(super) fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mtime: u64,
) -> Result<()> {
    let mut h = header(EntryType::Directory, 0o755, mtime);
    tar.append_data(&mut h, path, io::empty())
        .ctx(|| format!("writing {path}"))
}
