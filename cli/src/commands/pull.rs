//! `kiln pull`: an image from a registry into the store, every blob verified.

use std::path::Path;

use anyhow::Result;
use kiln_registry::copy::transport::Transport;
use kiln_store::Reference;

use super::{
    open_store,
    transfer::{PlatformFlags, TransferFlags, run_copy},
};

/// Pull an image from a registry
///
/// Names follow docker's rules: `busybox` is docker.io/library/busybox:latest, and
/// `host:5000/team/app:1.2` or `…@sha256:…` name any registry. localhost and 127.0.0.1
/// are reached over plain HTTP; other registries over HTTPS (see --insecure, --ca-cert).
/// Credentials come from ~/.docker/config.json (`kiln login`). Blobs download in
/// parallel; each is checked against its digest, and each layer gets the checks `kiln
/// load` makes (paths, diffID), before anything enters the store; from a
/// multi-platform image the host's platform is kept unless --platform or
/// --all-platforms says otherwise.
///
/// Example:  kiln pull 127.0.0.1:5000/team/app:1.2
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image to pull
    reference: String,

    #[command(flatten)]
    platform: PlatformFlags,

    #[command(flatten)]
    transfer: TransferFlags,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let store = open_store(root)?;
    let source = Transport::Registry(reference.clone());
    let destination = Transport::Store(String::new());
    let copied = run_copy(store, &source, &destination, &args.transfer, &args.platform)?;
    println!("Digest: {}", copied.source_top.digest);
    println!("{}", reference.familiar());
    Ok(())
}
