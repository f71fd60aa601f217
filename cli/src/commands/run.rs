//! `kiln run`: a command in kiln's sandbox over an image from the store; its exit code is
//! kiln's.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use kiln_builder::{
    container::{self, RunOptions},
    snapshot::{SnapshotOptions, SnapshotStore},
};

use super::open_store;

/// Run a command in a container of an image
///
/// The container is kiln's sandbox, as a RUN step gets it: new mount, PID, UTS and IPC
/// namespaces, Docker's default capabilities, a seccomp filter, the image's ENV, WORKDIR
/// and USER, and a fresh upper directory over the image's layers. Output streams live;
/// kiln exits with the command's exit code. Without --rm the container's changes are kept
/// as a layer tar under $KILN_ROOT/containers/.
///
/// Example:  kiln run --rm app:1 cat /etc/os-release
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Throw the container's changes away when it ends
    #[arg(long)]
    rm: bool,

    /// Set an environment variable (KEY=VALUE, or KEY to pass this one's)
    #[arg(short, long, value_name = "KEY[=VALUE]")]
    env: Vec<String>,

    /// The working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,

    /// Run as this user (name, uid, name:group or uid:gid)
    #[arg(short, long)]
    user: Option<String>,

    /// The network: host (the default) or none (loopback only)
    #[arg(long, default_value = "host", value_name = "MODE")]
    network: String,

    /// Replace the image's ENTRYPOINT (its CMD is dropped too)
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,

    /// The image
    image: String,

    /// The command and its arguments [default: the image's CMD]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The container's exit code, for `main` to exit with (nothing more to print).
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the container exited with code {}", self.0)
    }
}

impl std::error::Error for Exit {}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let network_none = match args.network.as_str() {
        "host" | "default" => false,
        "none" => true,
        other => return Err(anyhow!("--network {other}: expected host or none")),
    };
    let env = args
        .env
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some(_) => Some(e.clone()),
            // docker's rule: KEY alone passes this process's value, if it has one.
            None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect();
    let store = open_store(root)?;
    // Held shared while the container runs: `kiln prune --cache` (exclusive) must not
    // remove the unpacked layers under its mount.
    let _gc = store.gc_lock(false)?;
    let entry = store.resolve(&args.image)?;
    let image = store.image(&entry.descriptor)?;
    let snapshots = SnapshotStore::open(root, SnapshotOptions::from_env())?;
    snapshots.cleanup_stale()?;
    let options = RunOptions {
        command: args.command,
        entrypoint: args.entrypoint,
        env,
        workdir: args.workdir,
        user: args.user,
        network_none,
        keep: !args.rm,
    };
    let exe = std::env::current_exe().context("finding the kiln binary")?;
    let ran = container::run(&store, &snapshots, &image, &options, &exe)?;
    if let Some(kept) = &ran.kept {
        eprintln!("kiln: the container's changes are in {}", kept.display());
    }
    match ran.status.code() {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}
