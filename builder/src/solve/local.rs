//! `LocalWorker`: the worker of a `kiln build` on this machine. Base images come from the
//! store (pulled into it first when missing, by a caller-given puller); a step's root is a
//! snapshot mount of its parent's layers; RUN goes through kiln's sandbox; the mount's
//! changes become a layer in the store's blobs.

use std::{
    collections::HashMap,
    fs, io,
    os::unix::fs::{PermissionsExt, lchown},
    path::{Component, Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use kiln_store::{BlobStore, Compression, Descriptor, Digest, ImageStore, LayerOptions, Platform};

use super::{
    BaseImage, CopyOp, ImageState, Op, RunOp, Worker, WorkerError, copy, output::StepOutput,
    worker::Network,
};
use crate::{
    cache::LayerRecord,
    context::Dockerignore,
    files::Downloads,
    snapshot::{BlobLayers, Mount, SnapshotStore},
};

/// Fetches an image into the store (`kiln pull`'s copy); the CLI supplies it.
pub type Puller<'a> = dyn FnMut(&str) -> Result<(), String> + 'a;

pub struct LocalWorker<'a> {
    pub store: &'a ImageStore,
    pub snapshots: &'a SnapshotStore,
    /// The kiln binary, re-executed as the sandbox helper.
    pub kiln_exe: PathBuf,
    pub context: PathBuf,
    pub ignore: Dockerignore,
    pub compression: Compression,
    pub layer_options: LayerOptions,
    pub platform: Platform,
    /// Pull every base image once even when the store has it (`--pull`).
    pub pull_always: bool,
    pub puller: &'a mut Puller<'a>,
    /// Show no step output (it is still kept for a failure's message).
    pub quiet: bool,
    /// Set when the build is asked to stop (SIGINT): no further step starts.
    pub stop: Option<&'a AtomicBool>,
    /// ADD's URLs, fetched once per build (for the cache key, reused on a miss).
    pub downloads: Downloads,
    bases: HashMap<String, BaseImage>,
}

impl<'a> LocalWorker<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &'a ImageStore,
        snapshots: &'a SnapshotStore,
        kiln_exe: PathBuf,
        context: PathBuf,
        ignore: Dockerignore,
        compression: Compression,
        pull_always: bool,
        puller: &'a mut Puller<'a>,
    ) -> LocalWorker<'a> {
        let mut layer_options = LayerOptions::from_env();
        layer_options.overlay_whiteouts = false;
        LocalWorker {
            store,
            snapshots,
            kiln_exe,
            context,
            ignore,
            compression,
            layer_options,
            platform: Platform::host(),
            pull_always,
            puller,
            quiet: false,
            stop: None,
            downloads: Downloads::new(snapshots.scratch_dir()),
            bases: HashMap::new(),
        }
    }

    /// A root holding `state`'s file system (an overlay with a fresh upper directory).
    pub fn mount(&self, state: &ImageState) -> Result<Mount, WorkerError> {
        let mut layers = BlobLayers::new(self.store.blobs());
        for (diff_id, blob) in state.config.rootfs.diff_ids.iter().zip(&state.layers) {
            layers.insert(diff_id.clone(), blob.digest.clone());
        }
        self.snapshots
            .mount(&state.config.rootfs.diff_ids, &layers)
            .map_err(|e| WorkerError::new(format!("preparing the step's file system: {e}")))
    }

    fn find_base(&mut self, name: &str) -> Result<BaseImage, WorkerError> {
        let found = if self.pull_always {
            None
        } else {
            self.store.resolve(name).ok()
        };
        let entry = match found {
            Some(entry) => entry,
            None => {
                (self.puller)(name)
                    .map_err(|e| WorkerError::new(format!("base image {name}: {e}")))?;
                self.store
                    .resolve(name)
                    .map_err(|e| WorkerError::new(format!("base image {name}: {e}")))?
            }
        };
        let image = self
            .store
            .image_for(&entry.descriptor, &self.platform)
            .map_err(|e| WorkerError::new(format!("base image {name}: {e}")))?;
        Ok(BaseImage {
            manifest: image.manifest_descriptor.digest.clone(),
            config: image.config,
            layers: image.manifest.layers,
        })
    }

    fn run(&self, mount: &Mount, run: &RunOp) -> Result<(), WorkerError> {
        let root = mount.root();
        let user_spec = if run.user.is_empty() { "0" } else { &run.user };
        let user = kiln_sandbox::resolve_user(root, user_spec)
            .map_err(|e| WorkerError::new(format!("USER {user_spec}: {e}")))?;
        let mut spec = kiln_sandbox::Spec::new(root, run.argv.clone());
        spec.env = run.env.clone();
        spec.cwd = PathBuf::from(&run.workdir);
        spec.user = user;
        spec.network = match run.network {
            Network::Host => kiln_sandbox::Network::Host,
            Network::None => kiln_sandbox::Network::None,
        };
        if run.network == Network::Host {
            // docker build gives a step the host's resolvers.
            spec.resolv_conf = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        }
        let (output, writer) = StepOutput::start(self.quiet)
            .map_err(|e| WorkerError::new(format!("a pipe for the step's output: {e}")))?;
        let outcome = kiln_sandbox::spawn_with_output(&spec, &self.kiln_exe, Some(writer))
            .and_then(|sandbox| sandbox.wait())
            .map_err(|e| WorkerError::new(e.to_string()));
        let tail = output.finish();
        let outcome = outcome?;
        // Mount points the sandbox had to create are not the step's doing.
        for created in outcome.created.iter().rev() {
            let path = kiln_sandbox::host_path(root, created);
            let _ = fs::remove_dir(&path).or_else(|_| fs::remove_file(&path));
        }
        if !outcome.status.success() {
            let code = outcome.status.code();
            let how = match outcome.status {
                kiln_sandbox::Status::Exited(_) => "failed".to_string(),
                kiln_sandbox::Status::Signaled(s) => format!("was killed by signal {s}"),
                kiln_sandbox::Status::Interrupted(s) => {
                    format!("was interrupted (signal {s}); every process of the step was killed")
                }
            };
            return Err(WorkerError {
                message: format!(
                    "the command {} {how} (exit code: {code})",
                    shell_words(&run.argv)
                ),
                exit_code: Some(code),
                output: tail,
            });
        }
        Ok(())
    }

    fn mkdir(&self, mount: &Mount, path: &str, user: &str) -> Result<(), WorkerError> {
        let root = mount.root();
        let user_spec = if user.is_empty() { "0" } else { user };
        let owner = kiln_sandbox::resolve_user(root, user_spec)
            .map_err(|e| WorkerError::new(format!("USER {user_spec}: {e}")))?;
        mkdir_in_root(root, Path::new(path), owner.uid, owner.gid)
            .map_err(|e| WorkerError::new(format!("creating WORKDIR {path}: {e}")))
    }
}

impl Worker for LocalWorker<'_> {
    fn blobs(&self) -> &BlobStore {
        self.store.blobs()
    }

    fn base(&mut self, name: &str) -> Result<BaseImage, WorkerError> {
        if let Some(found) = self.bases.get(name) {
            return Ok(found.clone());
        }
        let found = self.find_base(name)?;
        self.bases.insert(name.to_string(), found.clone());
        Ok(found)
    }

    fn inputs(&mut self, op: &CopyOp<'_>) -> Result<Digest, WorkerError> {
        copy::inputs(&self.context, &self.ignore, &mut self.downloads, op)
    }

    fn layer(&mut self, state: &ImageState, op: &Op<'_>) -> Result<LayerRecord, WorkerError> {
        if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(WorkerError::new("the build was interrupted"));
        }
        let link = matches!(op, Op::Copy(c) if c.instruction.flag("link").is_some());
        let mount = if link {
            // `--link`: the layer does not depend on what is below it.
            self.mount(&ImageState::scratch(&self.platform))?
        } else {
            self.mount(state)?
        };
        match op {
            Op::Run(run) => self.run(&mount, run)?,
            Op::Mkdir { path, user } => self.mkdir(&mount, path, user)?,
            Op::Copy(c) => {
                let from = match c.from {
                    super::CopyFrom::Context => None,
                    super::CopyFrom::State(s) => Some(self.mount(s)?),
                };
                copy::apply(
                    &self.context,
                    &self.ignore,
                    from.as_ref().map(Mount::root),
                    &mut self.downloads,
                    c,
                    mount.root(),
                )?;
            }
        }
        // A stop asked for while the step ran (its sandbox may have started too late to
        // see the signal) ends the build here.
        if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(WorkerError::new("the build was interrupted"));
        }
        let fail = |e: kiln_store::Error| WorkerError::new(format!("storing the layer: {e}"));
        let staged = mount
            .commit(self.store.blobs(), self.compression, &self.layer_options)
            .map_err(|e| WorkerError::new(format!("writing the layer: {e}")))?;
        let diff_id = staged.diff_id.clone();
        let media_type = staged.media_type();
        let size = staged.blob.size;
        let digest = staged.blob.commit(self.store.blobs(), None).map_err(fail)?;
        mount
            .release()
            .map_err(|e| WorkerError::new(format!("releasing the step's file system: {e}")))?;
        Ok(LayerRecord {
            diff_id,
            blob: Descriptor::new(media_type, digest, size),
        })
    }
}

/// Create `path` (absolute, inside `root`) and its missing parents, owned by uid:gid, mode
/// 0755. Symlinks on the way are followed as if `root` were `/`: an image's link cannot
/// make kiln create anything outside it.
pub fn mkdir_in_root(root: &Path, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut current = PathBuf::new(); // relative to root
    let mut links = 0;
    while let Some(next) = pending.pop() {
        let mut components: Vec<Component> = next.components().collect();
        components.reverse();
        while let Some(c) = components.pop() {
            match c {
                Component::RootDir => current = PathBuf::new(),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    current.pop();
                }
                Component::Normal(name) => {
                    let candidate = current.join(name);
                    let full = root.join(&candidate);
                    match fs::symlink_metadata(&full) {
                        Ok(m) if m.is_dir() => current = candidate,
                        Ok(m) if m.file_type().is_symlink() => {
                            links += 1;
                            if links > 40 {
                                return Err(io::Error::other("too many levels of symbolic links"));
                            }
                            let target = fs::read_link(&full)?;
                            let rest: PathBuf = components.iter().rev().collect();
                            components.clear();
                            pending.push(target.join(rest));
                        }
                        Ok(_) => {
                            return Err(io::Error::other(format!(
                                "/{} is not a directory",
                                candidate.display()
                            )));
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            fs::create_dir(&full)?;
                            fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
                            lchown(&full, Some(uid), Some(gid))?;
                            current = candidate;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(())
}

/// argv as a shell would show it, for messages.
fn shell_words(argv: &[String]) -> String {
    format!("{argv:?}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::mkdir_in_root;

    #[test]
    fn mkdir_stays_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("../../..", root.path().join("up")).unwrap();
        // The test's own ids: chowning to oneself always works.
        let me = std::fs::metadata("/proc/self").unwrap();
        let (uid, gid) = (me.uid(), me.gid());
        mkdir_in_root(root.path(), "/escape/a/b".as_ref(), uid, gid).unwrap();
        mkdir_in_root(root.path(), "/up/c".as_ref(), uid, gid).unwrap();
        // An absolute link resolves inside the root: root/<outside path>/a/b.
        let inside = root.path().join(outside.path().strip_prefix("/").unwrap());
        assert!(inside.join("a/b").is_dir());
        assert!(!outside.path().join("a").exists());
        assert!(root.path().join("c").is_dir());
    }
}
