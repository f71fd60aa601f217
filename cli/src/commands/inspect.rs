//! `kiln inspect`: an image's manifest and config as JSON.

use std::path::Path;

use anyhow::Result;
use kiln_store::{CONFIG_LIMIT, DOCUMENT_LIMIT, ImageStore};
use serde_json::{Value, json};

use super::open_store;

/// Show an image's manifest and config as JSON
///
/// Prints a JSON array with one object per image: Id (config digest), Digest (manifest
/// digest), RepoTags, and the exact Manifest and Config documents.
#[derive(clap::Args)]
pub struct Args {
    /// Images (names, IDs or digests)
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let mut out = Vec::new();
    for name in &args.images {
        out.push(inspect_one(&store, name)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn inspect_one(store: &ImageStore, name: &str) -> Result<Value> {
    let entry = store.resolve(name)?;
    let image = store.image(&entry.descriptor)?;
    let repo_tags: Vec<String> = store
        .entries()?
        .into_iter()
        .filter(|e| e.descriptor.digest == entry.descriptor.digest)
        .filter_map(|e| e.reference.map(|r| r.familiar()))
        .collect();
    let blobs = store.blobs();
    let manifest: Value = serde_json::from_slice(
        &blobs.read_verified(&image.manifest_descriptor.digest, DOCUMENT_LIMIT)?,
    )?;
    let config: Value = serde_json::from_slice(&blobs.read_verified(image.id(), CONFIG_LIMIT)?)?;
    Ok(json!({
        "Id": image.id().to_string(),
        "Digest": image.manifest_descriptor.digest.to_string(),
        "RepoTags": repo_tags,
        "MediaType": image.manifest_descriptor.media_type,
        "Created": image.config.created,
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Size": super::images::image_size(store, &image),
        "Manifest": manifest,
        "Config": config,
    }))
}
