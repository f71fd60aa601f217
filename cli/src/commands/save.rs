//! `kiln save`: images to one tarball that Docker, skopeo and any OCI tool can read.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_store::{
    Compression, Reference,
    archive::{SaveOptions, SaveRequest, save},
};

use super::open_store;
use crate::output::Sink;

/// Save images to a tar archive (Docker archive and OCI layout in one)
///
/// The archive holds `manifest.json` and `repositories` (what `docker load` reads) and
/// `oci-layout`, `index.json` and `blobs/` (an OCI image layout, what skopeo `oci-archive:`
/// and umoci read), as Docker 25+ writes it. Blobs shared by several images are stored once.
///
/// Example:  kiln save -o bundle.tar app:1.2 busybox
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Compress the whole archive
    #[arg(long, value_parser = ["gzip", "zstd"])]
    compress: Option<String>,

    /// Images to save (names, IDs or digests)
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let mut requests = Vec::new();
    for name in &args.images {
        let entry = store.resolve(name)?;
        // Saved by name: keep the name. Saved by ID: docker saves it untagged.
        let reference = Reference::parse(name)
            .ok()
            .filter(|r| entry.reference.as_ref() == Some(r));
        requests.push(SaveRequest { entry, reference });
    }
    let options = SaveOptions {
        compression: match args.compress.as_deref() {
            Some("gzip") => Compression::Gzip,
            Some("zstd") => Compression::Zstd,
            _ => Compression::None,
        },
        ..SaveOptions::default()
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    {
        let mut out = sink.writer();
        save(&store, &requests, &mut out, &options)?;
        std::io::Write::flush(&mut out).context("writing the archive")?;
    }
    sink.finish()
}
