//! kiln's sandbox: runs one process in a container kiln makes itself (no runc, no daemon).
//! The only code in kiln with `unsafe`, libc and seccomp; a leaf that imports nothing of kiln.
//!
//! # Shape
//!
//! ```text
//! kiln (any threads, tokio)             run(spec, kiln_exe) / spawn
//!  └─ kiln __sandbox-init SPEC REPORT   the helper: one thread, host PID namespace;
//!      │                                unshare(mount, pid, uts, ipc[, net]), supervise
//!      └─ PID 1 of the new namespace    pivot, /proc, /dev, /etc binds, hostname, lo,
//!                                       workdir, user, caps, no_new_privs, seccomp,
//!                                       then exec: the command is PID 1
//! ```
//!
//! - The parent never forks itself into a namespace: `std::process::Command` re-executes
//!   the kiln binary, whose `main` calls [`init_main`] before clap or any runtime, so the
//!   process that unshares has one thread. The spec travels as JSON on a pipe; reports
//!   (created mount points, a setup error, how the command ended) come back as JSON lines
//!   on another (see `report`).
//! - Stopping: Ctrl-C reaches the helper through the terminal's process group; kiln's death
//!   reaches it as a parent-death SIGTERM; [`Stopper::stop`] sends SIGTERM. The helper
//!   answers each with SIGKILL to PID 1, which takes every process of the namespace down,
//!   and the container's mounts vanish with its mount namespace (they were private from
//!   the first step, so the host's mount table never saw them). PID 1 itself dies with the
//!   helper (parent-death SIGKILL). Exit codes pass through, a signal death as 128+N.
//! - Every system call of the setup goes through [`syscall::Syscall`]: [`syscall::Linux`]
//!   makes them, [`syscall::Recording`] writes them down for tests that need no root.
//!
//! # Room for rootless (not built yet)
//!
//! A user namespace slots in without changing [`Spec`] (it gains an optional id map):
//! 1. the helper unshares `CLONE_NEWUSER` alone first and tells the parent on the report
//!    pipe; the parent runs `newuidmap`/`newgidmap` for the helper's pid with the ranges
//!    from `/etc/subuid` and `/etc/subgid` and answers on the spec pipe (kept open for it);
//! 2. the helper then unshares the other namespaces, which the new user namespace owns,
//!    and everything else runs as now, with ids inside the namespace;
//! 3. `/dev` nodes become bind mounts of the host's (mknod is refused in a user namespace),
//!    opened from the old root before it is detached — which is why the old root stays
//!    stacked until the end of `rootfs::prepare`, and why `/proc` is mounted while it is
//!    still visible;
//! 4. read-only remounts already repeat the locked flags of `/proc`;
//! 5. overlay then needs `userxattr`, and files owned by mapped ids can only be unpacked,
//!    diffed and removed from inside the namespace (see ARCHITECTURE.md).

mod caps;
mod container;
mod init;
mod parent;
mod report;
mod rootfs;
mod seccomp;
mod spec;
pub mod syscall;
mod user;

use std::{path::PathBuf, process::ExitStatus};

pub use caps::{DEFAULT as DEFAULT_CAPABILITIES, default_mask as default_capability_mask};
pub use container::SetupError;
pub use init::{INIT_ARG, init_main};
pub use parent::{Sandbox, Stopper, run, spawn, spawn_with_output};
pub use seccomp::{FilterError, blocked_names as seccomp_blocked, default_filter};
pub use spec::{DEFAULT_PATH, Network, Outcome, Spec, Status, User, default_hosts, host_path};
pub use user::{UserError, resolve_user};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("cannot start the sandbox helper {}: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    /// The container could not be set up (or the command not executed); nothing ran. The
    /// root may still hold mount points created before the failure: a failed step's
    /// upper directory is meant to be thrown away.
    #[error("sandbox: {0}")]
    Setup(String),
    #[error("the sandbox helper ended without a report ({0})")]
    Helper(ExitStatus),
    #[error("sandbox: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
