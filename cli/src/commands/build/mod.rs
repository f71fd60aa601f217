//! `kiln build`: a Dockerfile into an image in the store (`execute`), or the plan shown
//! (`--print=outline`).

mod display;
mod execute;

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use kiln_builder::{
    context::Dockerignore,
    dockerfile,
    plan::{BaseImages, PlanOptions, plan},
};
use kiln_store::{ImageStore, Platform};

use super::transfer::RegistryFlags;
use crate::output::human_size;

/// Build an image from a Dockerfile
///
/// Reads the Dockerfile (CONTEXT/Dockerfile unless -f says otherwise), expands its
/// variables with BuildKit's rules, and builds the stages the target needs: RUN steps in
/// kiln's own sandbox (new mount, PID, UTS and IPC namespaces, Docker's default
/// capabilities, a seccomp filter; the host's network unless --network none), COPY and
/// ADD from the context after .dockerignore, every step looked up in the layer cache
/// first. The image lands in the local store under every -t name. Base images come from
/// the store, else from their registry (as `kiln pull`).
/// --print=outline shows the plan instead of building.
///
/// Example:  kiln build -t app:1 --build-arg VERSION=1.2 .
#[derive(clap::Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The build context directory; - reads a tar of it (plain, gzip or zstd) from
    /// standard input, or a Dockerfile alone (then the context is empty)
    context: PathBuf,

    /// The Dockerfile (- for standard input) [default: CONTEXT/Dockerfile]
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,

    /// Build this stage and what it needs [default: the last stage]
    #[arg(long)]
    target: Option<String>,

    /// Set a build-time variable: NAME=VALUE, or NAME to take it from the environment
    #[arg(long, value_name = "NAME[=VALUE]")]
    build_arg: Vec<String>,

    /// The platform to build for; only the host's (os/arch[/variant]) [default: the host]
    #[arg(long)]
    platform: Option<String>,

    /// Print instead of building: `outline` (the plan) or `outline-json` (the same plan
    /// as JSON: target, global ARGs, stages with base, needs, ARGs and steps, context)
    #[arg(long, value_name = "WHAT")]
    print: Option<String>,

    /// Name the result (repeatable)
    #[arg(short, long, value_name = "NAME:TAG")]
    tag: Vec<String>,

    /// Run every step, ignoring the layer cache (results still go into it)
    #[arg(long)]
    no_cache: bool,

    /// Fetch every base image from its registry, even when the store has it
    #[arg(long)]
    pull: bool,

    /// The network of RUN steps: default (the host's), host, or none (loopback only)
    #[arg(long, default_value = "default", value_name = "MODE")]
    network: String,

    /// How to show progress: auto, tty, plain (with timestamps) or quiet
    #[arg(long, default_value = "auto", value_name = "MODE")]
    progress: String,

    /// Show nothing but the image ID at the end
    #[arg(short, long)]
    quiet: bool,

    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,

    /// Add a label to the image (KEY=VALUE, repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,

    /// The image format: oci, or docker (schema 2)
    #[arg(long, default_value = "oci", value_name = "FORMAT")]
    format: String,

    /// How layers are compressed: gzip or zstd
    #[arg(long, default_value = "gzip", value_name = "ALGORITHM")]
    compress: String,

    #[command(flatten)]
    registry: RegistryFlags,

    /// What errors call the Dockerfile when it is not a file the user named (`kiln build -`).
    #[arg(skip)]
    dockerfile_name: Option<String>,
}

/// Base images' ONBUILD triggers, from the images kiln's store holds (a base that is not
/// there yet has none to show: pulling is the build's job, not the outline's).
struct StoreImages(Option<ImageStore>);

impl BaseImages for StoreImages {
    fn onbuild(&self, image: &str) -> Vec<String> {
        let Some(store) = &self.0 else {
            return Vec::new();
        };
        let Ok(entry) = store.resolve(image) else {
            return Vec::new();
        };
        let Ok(found) = store.image(&entry.descriptor) else {
            return Vec::new();
        };
        found
            .config
            .config
            .and_then(|c| c.extra.get("OnBuild").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default()
    }
}

/// The Dockerfile, parsed: its name (for messages) and contents.
fn parse_dockerfile(args: &Args) -> Result<(String, dockerfile::Dockerfile)> {
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| args.context.join("Dockerfile"));
    let (mut name, text) = read_dockerfile(&path)?;
    if let Some(given) = &args.dockerfile_name {
        name = given.clone();
    }
    match dockerfile::parse(&name, &text) {
        Ok(p) => Ok((name, p)),
        Err(e) => bail!("{e}"),
    }
}

fn plan_options(args: &Args) -> Result<PlanOptions> {
    let mut build_args = BTreeMap::new();
    for arg in &args.build_arg {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                // docker's rule: NAME alone takes the value from the environment, if set.
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    let target_platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    Ok(PlanOptions {
        build_args,
        target: args.target.clone(),
        target_platform,
        build_platform: Platform::host(),
    })
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    if args.print.is_none() {
        return execute::build(root, &args);
    }
    let (name, parsed) = parse_dockerfile(&args)?;
    let options = plan_options(&args)?;
    // Only an existing store is read: an outline never creates one.
    let store = root
        .join("images/oci-layout")
        .is_file()
        .then(|| ImageStore::open(root).ok())
        .flatten();
    let planned = plan(&parsed, &name, &options, &StoreImages(store))?;
    for warning in parsed.warnings.iter().chain(&planned.warnings) {
        eprintln!("kiln: warning: {warning}");
    }
    match args.print.as_deref() {
        Some("outline") => {
            print!("{}", planned.outline());
            let context = ContextSummary::read(&args)?;
            println!(
                "\nCONTEXT  {}: {} files, {} after .dockerignore",
                args.context.display(),
                context.files,
                human_size(context.bytes)
            );
            Ok(())
        }
        Some("outline-json") => {
            let context = ContextSummary::read(&args)?;
            let mut out = planned.outline_json();
            out["context"] = serde_json::json!({
                "path": args.context.display().to_string(),
                "dockerignore": context.dockerignore,
                "files": context.files,
                "bytes": context.bytes,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Some(other) => bail!("--print={other}: expected outline or outline-json"),
        None => unreachable!("builds are handled above"),
    }
}

/// The build context as a build would send it: what is left after `.dockerignore`.
struct ContextSummary {
    /// The ignore file that applied, if any.
    dockerignore: Option<String>,
    files: usize,
    bytes: u64,
}

impl ContextSummary {
    fn read(args: &Args) -> Result<ContextSummary> {
        let dockerfile = args.file.as_deref().filter(|f| *f != Path::new("-"));
        let (ignore, from) = Dockerignore::for_build_from(&args.context, dockerfile)
            .with_context(|| format!("reading the .dockerignore of {}", args.context.display()))?;
        let entries = ignore
            .walk(&args.context)
            .with_context(|| format!("reading the context {}", args.context.display()))?;
        Ok(ContextSummary {
            dockerignore: from.map(|p| p.display().to_string()),
            files: entries.iter().filter(|e| !e.is_dir).count(),
            bytes: entries.iter().map(|e| e.size).sum(),
        })
    }
}

fn read_dockerfile(path: &Path) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the Dockerfile from standard input")?;
        return Ok(("-".into(), text));
    }
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{name} is not UTF-8 text"))?;
    Ok((name, text))
}
