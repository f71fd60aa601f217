//! The system calls the sandbox makes, behind a trait (as youki's `Syscall`): `Linux` makes
//! them, `Recording` writes them down so unit tests can check their order and arguments
//! without root.

mod linux;
mod recording;

use std::{io, path::Path};

pub use linux::Linux;
pub use recording::{Call, Recording};
pub use seccompiler::BpfProgram;

/// What a path is, following symlinks (inside the pivoted root, symlinks resolve inside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// Every call the sandbox's setup makes, in the order `container` makes them.
pub trait Syscall {
    /// `unshare(2)` with `CLONE_NEW*` flags.
    fn unshare(&self, flags: libc::c_int) -> io::Result<()>;
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: libc::c_int) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `stat(2)`; `None` when the path does not exist.
    fn stat(&self, path: &Path) -> io::Result<Option<Meta>>;
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates or truncates a regular file with these contents and permission bits.
    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()>;
    fn mknod(&self, path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()>;
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// Brings `lo` up in the current network namespace.
    fn loopback_up(&self) -> io::Result<()>;
    /// `PR_SET_PDEATHSIG`: the signal this process gets when its parent dies.
    fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()>;
    /// Marks every descriptor from `first` on close-on-exec, so none leaks into the command.
    fn close_fds_on_exec(&self, first: u32) -> io::Result<()>;
    /// Drops from the bounding set every capability not in the `keep` mask.
    fn restrict_bounding_set(&self, keep: u64) -> io::Result<()>;
    fn clear_ambient_capabilities(&self) -> io::Result<()>;
    fn setgroups(&self, gids: &[u32]) -> io::Result<()>;
    fn setresgid(&self, gid: u32) -> io::Result<()>;
    fn setresuid(&self, uid: u32) -> io::Result<()>;
    /// `capset(2)` of this thread's effective, permitted and inheritable sets (masks).
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> io::Result<()>;
    fn set_no_new_privs(&self) -> io::Result<()>;
    fn seccomp(&self, filter: &BpfProgram) -> io::Result<()>;
    /// `execve(2)`; returns only on failure.
    fn execve(&self, path: &Path, argv: &[String], env: &[String]) -> io::Error;
}
