//! `kiln export`: the flattened filesystem of an image as one tar.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use kiln_store::export_flat;

use super::open_store;
use crate::output::Sink;

/// Write an image's filesystem (all layers, whiteouts applied) as one tar
///
/// Like `docker export` of a fresh container of the image. The tar goes to FILE with -o
/// (written under a temporary name and renamed when complete), else to standard output.
///
/// Example:  kiln export busybox -o rootfs.tar
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image (name, ID or digest)
    image: String,

    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let store = open_store(root)?;
    let entry = store.resolve(&args.image)?;
    let image = store.image(&entry.descriptor)?;
    let mut sink = Sink::open(args.output.as_deref())?;
    {
        let mut out = sink.writer();
        export_flat(&store, &image, &mut out)?;
        out.flush().context("writing the archive")?;
    }
    sink.finish()
}
