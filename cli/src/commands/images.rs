//! `kiln images`: the images in the store, as docker lists them.

use std::path::Path;

use anyhow::Result;
use kiln_store::{Image, ImageStore};
use serde::Serialize;

use super::open_store;
use crate::output::{human_age, human_size, print_table};

/// List images
///
/// SIZE is what the image's blobs take in the store (config and compressed layers).
#[derive(clap::Args)]
pub struct Args {
    /// Only images of this repository (and tag), e.g. busybox or busybox:1.36
    filter: Option<String>,

    /// Output format
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,

    /// Only print image IDs
    #[arg(short, long)]
    quiet: bool,

    /// Show full image IDs
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    repository: String,
    tag: String,
    #[serde(rename = "ID")]
    id: String,
    digest: String,
    created_at: String,
    created_since: String,
    size: String,
    #[serde(rename = "SizeBytes")]
    size_bytes: u64,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let mut rows = Vec::new();
    for entry in store.entries()? {
        if let Some(filter) = &args.filter {
            let Some(r) = &entry.reference else { continue };
            let matches = if filter.contains(':') && !filter.ends_with(']') {
                r.familiar() == *filter || r.to_string() == *filter
            } else {
                r.familiar_repository() == *filter || r.repository() == *filter
            };
            if !matches {
                continue;
            }
        }
        let image = store.image(&entry.descriptor)?;
        let size = image_size(&store, &image);
        let (repository, tag) = match &entry.reference {
            Some(r) => (
                r.familiar_repository(),
                r.tag().unwrap_or("<none>").to_string(),
            ),
            None => ("<none>".into(), "<none>".into()),
        };
        let created = image.config.created.clone().unwrap_or_default();
        rows.push((
            created.clone(),
            Row {
                repository,
                tag,
                id: image.id().to_string(),
                digest: entry.descriptor.digest.to_string(),
                created_since: human_age(image.config.created.as_deref()),
                created_at: created,
                size: human_size(size),
                size_bytes: size,
            },
        ));
    }
    // Newest first, like docker; ties by name so the order is stable.
    rows.sort_by(|(a, ra), (b, rb)| {
        b.cmp(a)
            .then_with(|| ra.repository.cmp(&rb.repository))
            .then_with(|| ra.tag.cmp(&rb.tag))
    });
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    let short = |id: &str| {
        if args.no_trunc {
            id.to_string()
        } else {
            // docker's short ID: 12 hex characters, the algorithm dropped (sha512 too).
            let hex = id.split_once(':').map_or(id, |(_, hex)| hex);
            hex[..12.min(hex.len())].to_string()
        }
    };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            if seen.insert(row.id.clone()) {
                println!("{}", short(&row.id));
            }
        }
    } else if args.format == "json" {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.repository.clone(),
                    r.tag.clone(),
                    short(&r.id),
                    r.created_since.clone(),
                    r.size.clone(),
                ]
            })
            .collect();
        print_table(
            &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            &table,
        );
    }
    Ok(())
}

pub fn image_size(store: &ImageStore, image: &Image) -> u64 {
    let _ = store;
    image.manifest.config.size + image.manifest.layers.iter().map(|l| l.size).sum::<u64>()
}
