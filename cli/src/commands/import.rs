//! `kiln import`: a rootfs tarball becomes a one-layer image, like `docker import`.

use std::{
    fs::File,
    io::{self, BufReader},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context, Result};
use kiln_store::{Compression, ImageConfig, ImportOptions, Platform, Reference, import_rootfs};

use super::open_store;

/// Import a root filesystem tarball as a one-layer image
///
/// The tarball may be plain, gzip or zstd (recognised by its first bytes). Its entries are
/// kept exactly as they are (owners, modes, hard links, xattrs); paths with `..`, absolute
/// paths and links that leave the tree are refused. Prints the new image ID.
///
/// Example:  kiln import --change 'CMD ["sh"]' rootfs.tar.gz busybox:latest
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Apply a Dockerfile instruction to the image config, as docker import does (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR);
    /// repeatable, applied in order
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,

    /// Set the history comment [default: "Imported from FILE"]
    #[arg(short, long)]
    message: Option<String>,

    /// How to compress the layer in the store
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    compression: String,

    /// Platform the image is for, OS/ARCH[/VARIANT] [default: this machine's]
    #[arg(long)]
    platform: Option<String>,

    /// The tarball, or - for standard input
    file: PathBuf,

    /// Name for the image, NAME[:TAG] (untagged when left out)
    reference: Option<String>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let mut image = ImageConfig::default();
    kiln_builder::change::apply_changes(&mut image, &args.changes)?;
    let config = image.config.unwrap_or_default();
    let created = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(secs) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        None => SystemTime::now(),
    };
    let what = if args.file == Path::new("-") {
        "standard input".to_string()
    } else {
        args.file.display().to_string()
    };
    let options = ImportOptions {
        compression: match args.compression.as_str() {
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            _ => Compression::Gzip,
        },
        created: humantime::format_rfc3339_seconds(created).to_string(),
        config,
        comment: args.message.unwrap_or_else(|| {
            format!(
                "Imported from {}",
                if what == "standard input" { "-" } else { &what }
            )
        }),
        platform: match args.platform {
            Some(p) => parse_platform(&p)?,
            None => Platform::host(),
        },
    };
    let store = open_store(root)?;
    let imported = if args.file == Path::new("-") {
        import_rootfs(&store, io::stdin(), &what, reference.as_ref(), &options)?
    } else {
        let file = File::open(&args.file).with_context(|| format!("opening {what}"))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        import_rootfs(&store, reader, &what, reference.as_ref(), &options)?
    };
    println!("{}", imported.config.digest);
    Ok(())
}

pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(variant.to_string())),
        _ => anyhow::bail!("--platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"),
    };
    Ok(Platform {
        architecture: arch.to_string(),
        os: os.to_string(),
        os_version: None,
        os_features: None,
        variant,
    })
}
