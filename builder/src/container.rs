//! `kiln run`: one command in kiln's sandbox over an image's file system, on a fresh upper
//! directory (the same mounts, sandbox and user rules as a RUN step). With `keep`, the
//! container's changes are kept as a layer tar under `$KILN_ROOT/containers/<id>/`;
//! otherwise they go with the mount.

use std::{
    fs,
    path::{Path, PathBuf},
};

use kiln_sandbox::{Network, Spec, Status};
use kiln_store::{Image, ImageStore, LayerOptions};

use crate::snapshot::{BlobLayers, SnapshotStore};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Arguments after the image name (replace CMD).
    pub command: Vec<String>,
    /// `--entrypoint`: replaces ENTRYPOINT and drops the image's CMD, as docker does.
    pub entrypoint: Option<String>,
    /// `KEY=VALUE` set over the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network_none: bool,
    /// Keep the container's changes (no `--rm`).
    pub keep: bool,
}

#[derive(Debug)]
pub struct Ran {
    pub status: Status,
    /// Where the changes were kept, without `--rm`.
    pub kept: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContainerError(String);

fn fail(what: impl std::fmt::Display) -> ContainerError {
    ContainerError(what.to_string())
}

/// The process a container of `image` runs: docker's rules for ENTRYPOINT and CMD.
pub fn argv(image: &Image, options: &RunOptions) -> Result<Vec<String>, ContainerError> {
    let config = image.config.config.clone().unwrap_or_default();
    let mut argv = match &options.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    if !options.command.is_empty() {
        argv.extend(options.command.iter().cloned());
    } else if options.entrypoint.is_none() {
        argv.extend(config.cmd.clone().unwrap_or_default());
    }
    if argv.is_empty() {
        return Err(fail(
            "the image has no ENTRYPOINT or CMD: give a command after the image name",
        ));
    }
    Ok(argv)
}

/// Run a container of `image` and wait for it.
pub fn run(
    store: &ImageStore,
    snapshots: &SnapshotStore,
    image: &Image,
    options: &RunOptions,
    kiln_exe: &Path,
) -> Result<Ran, ContainerError> {
    let argv = argv(image, options)?;
    let config = image.config.config.clone().unwrap_or_default();
    let layers = BlobLayers::new(store.blobs()).with_image(image);
    let mount = snapshots
        .mount(&image.config.rootfs.diff_ids, &layers)
        .map_err(|e| fail(format!("preparing the container's file system: {e}")))?;
    let root = mount.root();
    let user_spec = options
        .user
        .clone()
        .or(config.user.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "0".into());
    let user = kiln_sandbox::resolve_user(root, &user_spec)
        .map_err(|e| fail(format!("user {user_spec}: {e}")))?;
    let mut env = config.env.clone().unwrap_or_default();
    for entry in &options.env {
        let key = entry.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(entry.clone());
    }
    let mut spec = Spec::new(root, argv);
    spec.env = env;
    spec.user = user;
    spec.cwd = PathBuf::from(
        options
            .workdir
            .clone()
            .or(config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
    );
    if !spec.cwd.is_absolute() {
        return Err(fail(format!(
            "the working directory {} is not absolute",
            spec.cwd.display()
        )));
    }
    if options.network_none {
        spec.network = Network::None;
    } else {
        spec.resolv_conf = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    }
    let outcome = kiln_sandbox::run(&spec, kiln_exe).map_err(fail)?;
    for created in outcome.created.iter().rev() {
        let path = kiln_sandbox::host_path(root, created);
        let _ = fs::remove_dir(&path).or_else(|_| fs::remove_file(&path));
    }
    let kept = if options.keep {
        Some(keep(store, &mount)?)
    } else {
        None
    };
    mount
        .release()
        .map_err(|e| fail(format!("removing the container's file system: {e}")))?;
    Ok(Ran {
        status: outcome.status,
        kept,
    })
}

/// The container's changes as `containers/<id>/diff.tar` (a layer: whiteouts for what it
/// removed).
fn keep(store: &ImageStore, mount: &crate::snapshot::Mount) -> Result<PathBuf, ContainerError> {
    let dir = store.root().join("containers");
    fs::create_dir_all(&dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    let id = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let path = dir.join(&id);
    fs::create_dir(&path).map_err(|e| fail(format!("creating {}: {e}", path.display())))?;
    let tar = path.join("diff.tar");
    let file =
        fs::File::create(&tar).map_err(|e| fail(format!("creating {}: {e}", tar.display())))?;
    mount
        .write_layer(std::io::BufWriter::new(file), &LayerOptions::default())
        .map_err(|e| fail(format!("writing {}: {e}", tar.display())))?;
    Ok(path)
}
