//! `kiln load`: images from a Docker or OCI archive into the store, every byte verified.

use std::{
    fs::File,
    io::{self, BufReader},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use kiln_store::archive::load;

use super::open_store;

/// Load images from a tar archive
///
/// Reads Docker archives (`docker save`, old and new style, skopeo `docker-archive:`) and OCI
/// archives (skopeo `oci-archive:`, `kiln save`), plain or wrapped in gzip or zstd. Every
/// blob digest and every layer diffID is checked, and layer paths are checked for escapes,
/// before anything becomes visible: a bad archive leaves the store as it was.
///
/// Example:  kiln load -i bundle.tar
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Read from FILE instead of standard input
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,

    /// Print nothing on success
    #[arg(short, long)]
    quiet: bool,

    /// `kiln load FILE`, as one might type it: refused with a hint (docker refuses it too)
    #[arg(hide = true, value_name = "FILE")]
    stray: Option<PathBuf>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    if let Some(file) = &args.stray {
        anyhow::bail!(
            "kiln load reads the archive from standard input or -i FILE: \
             kiln load -i {}",
            file.display()
        );
    }
    let store = open_store(root)?;
    let report = match args.input.as_deref().filter(|p| *p != Path::new("-")) {
        Some(path) => {
            let what = path.display().to_string();
            let file = File::open(path).with_context(|| format!("opening {what}"))?;
            load(&store, BufReader::with_capacity(1 << 20, file), &what)?
        }
        None => load(&store, io::stdin(), "standard input")?,
    };
    for warning in &report.warnings {
        eprintln!("kiln: warning: {warning}");
    }
    if !args.quiet {
        for image in &report.images {
            match &image.reference {
                Some(r) => println!("Loaded image: {}", r.familiar()),
                None => println!("Loaded image ID: {}", image.id),
            }
        }
    }
    Ok(())
}
