//! `kiln prune`: remove untagged images and every blob no tag (or the build cache) reaches;
//! with `--cache`, the build cache and the unpacked layers first.

use std::{fs, path::Path};

use anyhow::Result;
use kiln_builder::cache::CacheIndex;

use super::{cache_roots, open_store};
use crate::output::human_size;

/// Remove untagged images and blobs that no tag reaches
///
/// Layers the build cache names are kept, so the next `kiln build` still finds them;
/// --cache drops the build cache (its key index and the unpacked layers under
/// $KILN_ROOT/snapshots) and lets those layers go too.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Only list what would be removed
    #[arg(long)]
    dry_run: bool,

    /// Drop the build cache too
    #[arg(long)]
    cache: bool,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let mut cache_note = None;
    let report = store.gc_keeping(true, args.dry_run, || {
        if !args.cache {
            return cache_roots(root);
        }
        // Under the exclusive gc lock: no build is running (each holds it shared).
        let mut dropped = 0;
        for dir in [
            CacheIndex::dir_in(root),
            root.join("snapshots/layers"),
            root.join("snapshots/chains"),
        ] {
            if dir.is_dir() {
                dropped += fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
                if !args.dry_run {
                    fs::remove_dir_all(&dir).map_err(|e| {
                        kiln_store::Error::from_io(format!("removing {}", dir.display()), e)
                    })?;
                }
            }
        }
        cache_note = Some(dropped);
        Ok(Default::default())
    })?;
    let verb = if args.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    if let Some(n) = cache_note {
        println!("{verb} the build cache ({n} entries and unpacked layers)");
    }
    for digest in &report.untagged {
        println!("{verb} untagged image {digest}");
    }
    for (digest, size) in &report.removed {
        println!("{verb} blob {digest} ({})", human_size(*size));
    }
    println!(
        "Total reclaimed space: {}{}",
        human_size(report.bytes()),
        if args.dry_run { " (dry run)" } else { "" }
    );
    Ok(())
}
