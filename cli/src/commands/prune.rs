//! `kiln prune`: remove untagged images and every blob no tag reaches.

use std::path::Path;

use anyhow::Result;

use super::open_store;
use crate::output::human_size;

/// Remove untagged images and blobs that no tag reaches
#[derive(clap::Args)]
pub struct Args {
    /// Only list what would be removed
    #[arg(long)]
    dry_run: bool,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let report = store.gc(true, args.dry_run)?;
    let verb = if args.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
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
