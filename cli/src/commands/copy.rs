//! `kiln copy`: an image between any two transports (registries, OCI layouts, archives,
//! the store), with no daemon.

use std::path::Path;

use anyhow::Result;
use kiln_registry::copy::transport::Transport;

use super::{
    open_store,
    transfer::{PlatformFlags, TransferFlags, run_copy},
};

/// Copy an image between registries, OCI layouts, archives and the store
///
/// Transports, as skopeo names them:
///   docker://HOST/NAME[:TAG|@DIGEST]   a registry
///   oci:DIR[:TAG]                      an OCI image layout directory
///   oci-archive:FILE[:TAG]             an OCI layout in a tar
///   docker-archive:FILE[:NAME:TAG]     a `docker save` / `kiln save` tar
///   kiln:NAME, or a bare NAME          kiln's store
/// Manifests are copied byte for byte, so digests stay the same wherever the format
/// allows. Every blob is checked against its digest and size on the way; into kiln's
/// store, every layer also gets the checks `kiln load` makes (its paths, and its diffID
/// against the config) before anything becomes visible. Between other transports layers
/// are not unpacked, so their contents are not checked. An archive is written under a
/// temporary name and appears only when complete.
///
/// Examples:
///   kiln copy docker-archive:bundle.tar:app:1.2 docker://registry.lan:5000/app:1.2
///   kiln copy docker://127.0.0.1:5000/app:1.2 oci:./app-layout:1.2
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where the image is
    source: String,

    /// Where it goes
    destination: String,

    #[command(flatten)]
    platform: PlatformFlags,

    #[command(flatten)]
    transfer: TransferFlags,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let source = Transport::parse(&args.source)?;
    let destination = Transport::parse(&args.destination)?;
    let store = open_store(root)?;
    let copied = run_copy(store, &source, &destination, &args.transfer, &args.platform)?;
    println!("Copied {} -> {}", args.source, args.destination);
    println!("Digest: {}", copied.top.digest);
    Ok(())
}
