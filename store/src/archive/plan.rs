//! `Plan`: checks what the loader staged against the archive's own records — index.json
//! and the manifests it names (OCI, Docker 25+), or manifest.json (older Docker archives) —
//! and decides what becomes visible: every digest, size, diffID and layer media type must
//! agree before anything does.

use std::collections::HashMap;

use super::{
    DockerManifestItem, INDEX_JSON, MANIFEST_JSON,
    load::{Contents, LoadedImage},
};
use crate::{
    Descriptor, Digest, Error, ImageConfig, Index, LayerFacts, Manifest, Reference, Result,
    check_layer, check_layer_count,
    media_type::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, OCI_CONFIG, OCI_MANIFEST},
    spec::{self, DocumentKind},
};

/// What will become visible, once everything checked out.
#[derive(Default)]
pub(super) struct Plan {
    /// archive paths of staged blobs to move into the store
    pub commit: Vec<String>,
    /// manifests kiln writes itself (for Docker archives without one)
    pub documents: Vec<Vec<u8>>,
    pub images: Vec<LoadedImage>,
    pub warnings: Vec<String>,
}

/// Check a blob named by a descriptor: present at `blobs/sha256/<hex>`, right size, right digest.
fn verify_blob(
    contents: &Contents,
    plan: &mut Plan,
    d: &Descriptor,
    named_by: &str,
    what: &str,
) -> Result<String> {
    let path = format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex());
    let file = contents.get(&path, named_by, what)?;
    if file.digest != d.digest {
        return Err(Error::DigestMismatch {
            what: format!("{what}: {path}"),
            expected: d.digest.clone(),
            actual: file.digest.clone(),
        });
    }
    if file.size != d.size {
        return Err(Error::SizeMismatch {
            what: format!("{what}: {path} (named by {named_by})"),
            expected: d.size,
            actual: file.size,
        });
    }
    let resolved = contents.resolve(&path);
    plan.commit.push(resolved.clone());
    Ok(resolved)
}

/// Check that the layers' diffIDs are the ones the config lists, in order.
fn verify_layers(
    contents: &Contents,
    layer_paths: &[(String, Option<&str>)],
    config: &ImageConfig,
    config_name: &str,
    what: &str,
) -> Result<Vec<LayerFacts>> {
    let diff_ids = &config.rootfs.diff_ids;
    check_layer_count(
        &format!("{what}: {config_name}"),
        diff_ids.len(),
        layer_paths.len(),
    )?;
    let mut out = Vec::new();
    for ((path, declared), expected) in layer_paths.iter().zip(diff_ids) {
        let file = contents.get(path, config_name, what)?;
        let facts = match &file.layer {
            Some(Ok(facts)) => facts.clone(),
            Some(Err(e)) => return Err(clone_error(e)),
            None => {
                return Err(Error::BadImage {
                    what: format!("{what}: {path}"),
                    detail: "this layer is not a tar archive (plain, gzip or zstd)".into(),
                });
            }
        };
        check_layer(
            &format!("{what}: layer {path}"),
            &facts,
            &file.digest,
            expected,
            *declared,
        )?;
        out.push(facts);
    }
    Ok(out)
}

/// Errors are not Clone (io::Error); a verifier's error is reported once, so rebuild it.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::UnsafePath {
            archive,
            path,
            reason,
        } => Error::UnsafePath {
            archive: archive.clone(),
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Truncated { what, detail } => Error::Truncated {
            what: what.clone(),
            detail: detail.clone(),
        },
        Error::BadTar { what, detail } => Error::BadTar {
            what: what.clone(),
            detail: detail.clone(),
        },
        other => Error::archive("layer", other.to_string()),
    }
}

pub(super) fn plan_oci(contents: &mut Contents, plan: &mut Plan, what: &str) -> Result<()> {
    let index: Index = spec::from_json(
        contents.json(INDEX_JSON, "the archive", what)?,
        &format!("{what}: index.json"),
    )?;
    // Docker archives carry RepoTags beside the index: a fallback for bare ref.name tags.
    let docker_tags = docker_tags_by_config(contents, what);
    for top in &index.manifests {
        let config = verify_document(contents, plan, top, "index.json", what, 0)?;
        let name = top
            .annotation(ANNOTATION_CONTAINERD_NAME)
            .or(top.annotation(ANNOTATION_REF_NAME));
        let mut references = Vec::new();
        match name {
            Some(n) if n.contains(['/', ':']) => references.push(Reference::parse(n)?),
            Some(tag) => match config.as_ref().and_then(|c| docker_tags.get(c)) {
                Some(tags) => references.extend(tags.iter().cloned()),
                None => plan.warnings.push(format!(
                    "{} is named only {tag:?}, not a full image name: loaded untagged",
                    top.digest
                )),
            },
            None => {
                if let Some(tags) = config.as_ref().and_then(|c| docker_tags.get(c)) {
                    references.extend(tags.iter().cloned());
                }
            }
        }
        let id = config.unwrap_or_else(|| top.digest.clone());
        push_images(plan, references, top, id);
    }
    Ok(())
}

fn push_images(plan: &mut Plan, references: Vec<Reference>, top: &Descriptor, id: Digest) {
    let top = Descriptor::new(&top.media_type, top.digest.clone(), top.size);
    if references.is_empty() {
        plan.images.push(LoadedImage {
            reference: None,
            descriptor: top,
            id,
        });
        return;
    }
    for reference in references {
        plan.images.push(LoadedImage {
            reference: Some(reference),
            descriptor: top.clone(),
            id: id.clone(),
        });
    }
}

fn docker_tags_by_config(contents: &Contents, what: &str) -> HashMap<Digest, Vec<Reference>> {
    let mut out: HashMap<Digest, Vec<Reference>> = HashMap::new();
    let Ok(bytes) = contents.json(MANIFEST_JSON, "the archive", what) else {
        return out;
    };
    let Ok(items) = serde_json::from_slice::<Vec<DockerManifestItem>>(bytes) else {
        return out;
    };
    for item in items {
        if let Ok(file) = contents.get(&item.config, MANIFEST_JSON, what) {
            let refs = item
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            out.insert(file.digest.clone(), refs);
        }
    }
    out
}

/// Verify a manifest or index and everything under it. Returns the config digest of the
/// image (for an index, of the host platform's image when there is one).
fn verify_document(
    contents: &Contents,
    plan: &mut Plan,
    d: &Descriptor,
    named_by: &str,
    what: &str,
    depth: usize,
) -> Result<Option<Digest>> {
    if depth > 8 {
        return Err(Error::archive(what, "indexes nest more than 8 deep"));
    }
    let path = verify_blob(contents, plan, d, named_by, what)?;
    let bytes = contents.json(&path, named_by, what)?;
    let doc_name = format!("{what}: manifest {}", d.digest);
    match spec::document_kind(bytes, Some(&d.media_type), &doc_name)? {
        DocumentKind::Manifest => {
            let m: Manifest = spec::from_json(bytes, &doc_name)?;
            let manifest_name = format!("manifest {}", d.digest);
            let config_path = verify_blob(contents, plan, &m.config, &manifest_name, what)?;
            let config: ImageConfig = spec::from_json(
                contents.json(&config_path, &manifest_name, what)?,
                &format!("{what}: config {}", m.config.digest),
            )?;
            let mut layer_paths = Vec::new();
            for layer in &m.layers {
                let p = verify_blob(contents, plan, layer, &manifest_name, what)?;
                layer_paths.push((p, Some(layer.media_type.as_str())));
            }
            verify_layers(
                contents,
                &layer_paths,
                &config,
                &format!("config {}", m.config.digest),
                what,
            )?;
            Ok(Some(m.config.digest))
        }
        DocumentKind::Index => {
            let index: Index = spec::from_json(bytes, &doc_name)?;
            let index_name = format!("index {}", d.digest);
            let host = crate::Platform::host();
            let mut chosen = None;
            let mut present = 0;
            for child in &index.manifests {
                // An index may list platforms whose blobs were not saved; skip those.
                let child_path = format!("blobs/sha256/{}", child.digest.hex());
                if !contents.files.contains_key(&contents.resolve(&child_path)) {
                    continue;
                }
                present += 1;
                let id = verify_document(contents, plan, child, &index_name, what, depth + 1)?;
                let is_host = child.platform.as_ref().is_some_and(|p| p.matches(&host));
                if is_host || chosen.is_none() {
                    chosen = id.or(chosen);
                }
            }
            if present == 0 && !index.manifests.is_empty() {
                return Err(Error::MissingFile {
                    archive: format!("{what}: {index_name}"),
                    file: format!("blobs/sha256/{}", index.manifests[0].digest.hex()),
                });
            }
            Ok(chosen)
        }
    }
}

pub(super) fn plan_docker(contents: &mut Contents, plan: &mut Plan, what: &str) -> Result<()> {
    let items: Vec<DockerManifestItem> = spec::from_json(
        contents.json(MANIFEST_JSON, "the archive", what)?,
        &format!("{what}: manifest.json"),
    )?;
    if items.is_empty() {
        return Err(Error::archive(what, "manifest.json lists no images"));
    }
    for item in items {
        let config_file = contents.get(&item.config, MANIFEST_JSON, what)?;
        check_name_digest(&item.config, &config_file.digest, what)?;
        let config_path = contents.resolve(&item.config);
        let config_bytes = contents.json(&item.config, MANIFEST_JSON, what)?;
        let config_digest = config_file.digest.clone();
        let config: ImageConfig =
            spec::from_json(config_bytes, &format!("{what}: {}", item.config))?;
        plan.commit.push(config_path);

        let mut layer_paths = Vec::new();
        for layer in &item.layers {
            let file = contents.get(layer, MANIFEST_JSON, what)?;
            check_name_digest(layer, &file.digest, what)?;
            layer_paths.push((contents.resolve(layer), None));
        }
        let facts = verify_layers(contents, &layer_paths, &config, &item.config, what)?;

        let mut layers = Vec::new();
        for ((path, _), facts) in layer_paths.iter().zip(&facts) {
            let file = &contents.files[path];
            layers.push(Descriptor::new(
                facts.compression.oci_layer_media_type(),
                file.digest.clone(),
                file.size,
            ));
            plan.commit.push(path.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
            layers,
            subject: None,
            annotations: None,
        };
        let bytes = spec::to_json(&manifest);
        let top = Descriptor::new(OCI_MANIFEST, Digest::of(&bytes), bytes.len() as u64);
        plan.documents.push(bytes);
        let mut references = Vec::new();
        for tag in item.repo_tags.unwrap_or_default() {
            references.push(Reference::parse(&tag)?);
        }
        push_images(plan, references, &top, config_digest);
    }
    Ok(())
}

/// Files named after a digest (`<hex>.json`, `<hex>.tar`, `blobs/sha256/<hex>`) must hold it.
fn check_name_digest(path: &str, digest: &Digest, what: &str) -> Result<()> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name
        .strip_suffix(".json")
        .or(name.strip_suffix(".tar"))
        .unwrap_or(name);
    let by_blob_path = path.contains("blobs/sha256/");
    let named = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit());
    // Old docker saves name layers <v1-id>/layer.tar: v1 ids are not content digests.
    if (named && name != "layer.tar") || by_blob_path {
        let claimed = Digest::from_hex(stem)?;
        if &claimed != digest {
            return Err(Error::DigestMismatch {
                what: format!("{what}: {path}"),
                expected: claimed,
                actual: digest.clone(),
            });
        }
    }
    Ok(())
}
