//! `kiln history`: how an image was made, layer by layer.

use std::path::Path;

use anyhow::Result;

use super::open_store;
use crate::output::{human_age, human_size, print_table};

/// Show the history of an image
#[derive(clap::Args)]
pub struct Args {
    /// The image (name, ID or digest)
    image: String,

    /// Do not truncate CREATED BY
    #[arg(long)]
    no_trunc: bool,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let entry = store.resolve(&args.image)?;
    let image = store.image(&entry.descriptor)?;
    let mut layers = image.manifest.layers.iter();
    let mut rows = Vec::new();
    for h in &image.config.history {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().map_or(0, |l| l.size)
        };
        let mut created_by = h.created_by.clone().unwrap_or_default();
        if !args.no_trunc && created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            "<missing>".to_string(),
            human_age(h.created.as_deref()),
            created_by,
            human_size(size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top[0] = image.id().short().to_string();
    }
    print_table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    );
    Ok(())
}
