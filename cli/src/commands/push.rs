//! `kiln push`: an image from the store to a registry; manifests go last, so a push cut
//! short never leaves a tag naming missing blobs.

use std::path::Path;

use anyhow::{Context, Result};
use kiln_registry::copy::transport::Transport;
use kiln_store::Reference;

use super::{
    open_store,
    transfer::{PlatformFlags, TransferFlags, run_copy},
};

/// Push an image to a registry
///
/// Pushes IMAGE (a name, ID or digest in the store) to DESTINATION, or to the registry
/// IMAGE's own name points at. Blobs the registry has are skipped (HEAD first); blobs
/// pushed before to another repository of the same registry are mounted, not uploaded;
/// layers upload in parallel, and blobs over --chunk-size go in chunks that resume
/// where the registry says they stopped when a connection breaks. The manifest is
/// pushed after every blob arrived. A multi-platform image is pushed whole.
///
/// Example:  kiln push busybox:latest 127.0.0.1:5000/base/busybox:1.36
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image in the store
    image: String,

    /// Where to push it [default: IMAGE's own name]
    destination: Option<String>,

    #[command(flatten)]
    transfer: TransferFlags,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let destination = match &args.destination {
        Some(d) => Reference::parse(d)?,
        None => store.resolve(&args.image)?.reference.with_context(|| {
            format!("{} has no name to push to; give a destination", args.image)
        })?,
    };
    let platform = PlatformFlags {
        platform: None,
        all_platforms: true,
    };
    let copied = run_copy(
        store,
        &Transport::Store(args.image.clone()),
        &Transport::Registry(destination.clone()),
        &args.transfer,
        &platform,
    )?;
    println!(
        "{}: digest: {} size: {}",
        destination.tag().unwrap_or("latest"),
        copied.top.digest,
        copied.top.size
    );
    Ok(())
}
