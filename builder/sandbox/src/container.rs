//! The steps that turn the helper into the container, in order, over any `Syscall`:
//! namespaces (in the helper), then in its child (PID 1 of the new PID namespace) the
//! file system, hostname, network, working directory, identity, capabilities,
//! no_new_privs, seccomp and exec.

use std::{
    io,
    path::{Component, Path, PathBuf},
};

use crate::{
    caps, rootfs,
    spec::{Network, Spec},
    syscall::{BpfProgram, Kind, Syscall},
};

/// A failed step: what kiln was doing, and the system's answer.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct SetupError {
    pub step: String,
    pub source: io::Error,
}

/// Names the step an `io::Result` belongs to.
pub(crate) trait Step<T> {
    fn step(self, what: &str) -> Result<T, SetupError>;
}

impl<T> Step<T> for io::Result<T> {
    fn step(self, what: &str) -> Result<T, SetupError> {
        self.map_err(|source| SetupError {
            step: what.to_string(),
            source,
        })
    }
}

/// The namespaces the helper unshares before it forks the container's PID 1.
pub(crate) fn namespace_flags(spec: &Spec) -> libc::c_int {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// In the helper: leaves the host's namespaces (the PID namespace applies to its children).
pub(crate) fn enter_namespaces(sys: &impl Syscall, spec: &Spec) -> Result<(), SetupError> {
    sys.unshare(namespace_flags(spec)).step("unshare")
}

/// In the container's first process, up to the file system: the caller reports the created
/// mount points before [`exec`] (which returns only on failure).
pub(crate) fn prepare(sys: &impl Syscall, spec: &Spec) -> Result<Vec<PathBuf>, SetupError> {
    // The helper is outside the new PID namespace; if it dies, so does the container.
    sys.set_parent_death_signal(libc::SIGKILL)
        .step("setting the parent-death signal")?;
    let created = rootfs::prepare(sys, spec)?;
    sys.sethostname(&spec.hostname).step("sethostname")?;
    if spec.network == Network::None {
        sys.loopback_up().step("bringing lo up")?;
    }
    workdir(sys, spec)?;
    Ok(created)
}

/// Becomes the user, drops privileges and runs the command. Returns only on failure.
pub(crate) fn exec(sys: &impl Syscall, spec: &Spec, filter: &BpfProgram) -> SetupError {
    match exec_steps(sys, spec, filter) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_steps(
    sys: &impl Syscall,
    spec: &Spec,
    filter: &BpfProgram,
) -> Result<std::convert::Infallible, SetupError> {
    let env = spec.process_env();
    let program = lookup(sys, &spec.argv[0], &spec.search_path())?;
    let user = &spec.user;
    sys.close_fds_on_exec(3)
        .step("closing inherited descriptors")?;
    sys.restrict_bounding_set(caps::default_mask())
        .step("restricting the capability bounding set")?;
    sys.clear_ambient_capabilities()
        .step("clearing ambient capabilities")?;
    sys.setgroups(&user.groups).step("setgroups")?;
    sys.setresgid(user.gid).step("setgid")?;
    sys.setresuid(user.uid).step("setuid")?;
    let (effective, inheritable) = caps::sets_for(user.uid);
    sys.capset(effective, effective, inheritable)
        .step("setting capabilities")?;
    // A change of uid clears the parent-death signal; set it again.
    sys.set_parent_death_signal(libc::SIGKILL)
        .step("setting the parent-death signal")?;
    sys.set_no_new_privs().step("setting no_new_privs")?;
    sys.seccomp(filter).step("installing the seccomp filter")?;
    let err = sys.execve(&program, &spec.argv, &env);
    Err(SetupError {
        step: format!("exec {}", program.display()),
        source: err,
    })
}

/// Creates the working directory if it is missing and enters it. New directories belong to
/// the user and group of the process, as BuildKit's `WORKDIR` creates them.
fn workdir(sys: &impl Syscall, spec: &Spec) -> Result<(), SetupError> {
    // Cleaned lexically first, as docker cleans WORKDIR: `..` cannot climb above `/`.
    let mut clean = Vec::new();
    for component in spec.cwd.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    let mut path = PathBuf::from("/");
    for name in clean {
        path.push(name);
        let what = path.display().to_string();
        if sys.stat(&path).step(&what)?.is_none() {
            sys.mkdir(&path, 0o755)
                .step(&format!("creating the working directory {what}"))?;
            sys.chown(&path, spec.user.uid, spec.user.gid)
                .step(&format!("chown of the working directory {what}"))?;
        }
    }
    sys.chdir(&path).step(&format!(
        "entering the working directory {}",
        path.display()
    ))
}

/// Finds `argv[0]` as docker does: a name with a `/` is used as is (relative to the
/// working directory), any other is searched in `PATH` inside the root.
fn lookup(sys: &impl Syscall, name: &str, path: &str) -> Result<PathBuf, SetupError> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(Some(meta)) = sys.stat(&candidate)
            && meta.kind == Kind::File
            && meta.mode & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(SetupError {
        step: format!("exec: {name:?}"),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            "executable file not found in $PATH",
        ),
    })
}
