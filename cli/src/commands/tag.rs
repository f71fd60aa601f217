//! `kiln tag`: another name for an image.

use std::path::Path;

use anyhow::Result;
use kiln_store::Reference;

use super::open_store;

/// Give an image another name
///
/// Example:  kiln tag busybox registry.example:5000/base/busybox:1.36
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image (name, ID or digest)
    source: String,
    /// The new name, NAME[:TAG]
    target: String,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let target = Reference::parse(&args.target)?;
    if target.digest().is_some() {
        anyhow::bail!("{}: a tag cannot hold a digest", args.target);
    }
    let _gc = store.gc_lock(false)?;
    let entry = store.resolve(&args.source)?;
    store.set(Some(&target), &entry.descriptor)?;
    Ok(())
}
