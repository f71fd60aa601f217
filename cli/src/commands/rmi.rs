//! `kiln rmi`: remove images, and the blobs nothing else uses.

use std::path::Path;

use anyhow::{Result, bail};
use kiln_store::Reference;

use super::open_store;

/// Remove images
///
/// By name, removes that name; by ID or digest, removes every name of the image (only with
/// --force when it has several). Blobs that no remaining image uses are then deleted.
#[derive(clap::Args)]
pub struct Args {
    /// Remove an image by ID even when several names point at it
    #[arg(short, long)]
    force: bool,

    /// Images to remove (names, IDs or digests)
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let mut failed = 0;
    for name in &args.images {
        if let Err(e) = remove_one(&store, name, args.force) {
            eprintln!("kiln: error: {e:#}");
            failed += 1;
        }
    }
    let report = store.gc_keeping(false, false, || super::cache_roots(root))?;
    for (digest, _) in &report.removed {
        println!("Deleted: {digest}");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be removed",
            args.images.len()
        );
    }
    Ok(())
}

fn remove_one(store: &kiln_store::ImageStore, name: &str, force: bool) -> Result<()> {
    let entry = store.resolve(name)?;
    let by_name = Reference::parse(name)
        .ok()
        .filter(|r| entry.reference.as_ref() == Some(r));
    if let Some(reference) = by_name {
        store.untag(&reference)?;
        println!("Untagged: {}", reference.familiar());
        return Ok(());
    }
    let names = store
        .entries()?
        .into_iter()
        .filter(|e| e.descriptor.digest == entry.descriptor.digest && e.reference.is_some())
        .count();
    if names > 1 && !force {
        bail!("image {name} has {names} names; remove them by name, or use --force to remove all");
    }
    for gone in store.remove_digest(&entry.descriptor.digest)? {
        if let Some(r) = gone.reference {
            println!("Untagged: {}", r.familiar());
        }
    }
    Ok(())
}
