//! A `Syscall` that only writes the calls down, over a pretend file system, so tests can
//! check what the setup would do without root or namespaces.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use super::{BpfProgram, Kind, Meta, Syscall};

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Unshare(libc::c_int),
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: libc::c_ulong,
        data: Option<String>,
    },
    Umount2(PathBuf, libc::c_int),
    PivotRoot(PathBuf, PathBuf),
    Chdir(PathBuf),
    Mkdir(PathBuf, u32),
    WriteFile(PathBuf, String, u32),
    Mknod(PathBuf, u32, u32, u32),
    Chmod(PathBuf, u32),
    Chown(PathBuf, u32, u32),
    Symlink(PathBuf, PathBuf),
    Sethostname(String),
    LoopbackUp,
    ParentDeathSignal(libc::c_int),
    CloseFdsOnExec(u32),
    BoundingSet(u64),
    ClearAmbient,
    Setgroups(Vec<u32>),
    Setresgid(u32),
    Setresuid(u32),
    Capset {
        effective: u64,
        permitted: u64,
        inheritable: u64,
    },
    NoNewPrivs,
    /// The number of BPF instructions installed.
    Seccomp(usize),
    Execve(PathBuf, Vec<String>, Vec<String>),
}

/// Records calls; `stat` answers from the paths it was told exist or that calls created.
#[derive(Debug, Default)]
pub struct Recording {
    calls: RefCell<Vec<Call>>,
    files: RefCell<BTreeMap<PathBuf, Meta>>,
    /// A call (by `Debug` prefix, e.g. "PivotRoot") that fails with EPERM.
    fail: Option<&'static str>,
}

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    /// Pretends `path` exists with this kind (mode 0755).
    pub fn with(self, path: &str, kind: Kind) -> Recording {
        self.files
            .borrow_mut()
            .insert(PathBuf::from(path), Meta { kind, mode: 0o755 });
        self
    }

    /// Makes the first call whose `Debug` form starts with `name` fail with EPERM.
    pub fn failing(mut self, name: &'static str) -> Recording {
        self.fail = Some(name);
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: Call) -> io::Result<()> {
        let fails = self
            .fail
            .is_some_and(|name| format!("{call:?}").starts_with(name));
        self.calls.borrow_mut().push(call);
        if fails {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }

    fn create(&self, path: &Path, kind: Kind, mode: u32) {
        self.files
            .borrow_mut()
            .insert(path.to_path_buf(), Meta { kind, mode });
    }
}

impl Syscall for Recording {
    fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }

    fn umount2(&self, target: &Path, flags: libc::c_int) -> io::Result<()> {
        self.record(Call::Umount2(target.to_path_buf(), flags))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.record(Call::PivotRoot(
            new_root.to_path_buf(),
            put_old.to_path_buf(),
        ))
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()))
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        Ok(self.files.borrow().get(path).copied())
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Mkdir(path.to_path_buf(), mode))?;
        self.create(path, Kind::Dir, mode);
        Ok(())
    }

    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
        let text = String::from_utf8_lossy(contents).into_owned();
        self.record(Call::WriteFile(path.to_path_buf(), text, mode))?;
        self.create(path, Kind::File, mode);
        Ok(())
    }

    fn mknod(&self, path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.record(Call::Mknod(path.to_path_buf(), mode, major, minor))?;
        self.create(path, Kind::Other, mode & 0o7777);
        Ok(())
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Chmod(path.to_path_buf(), mode))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Call::Chown(path.to_path_buf(), uid, gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink(target.to_path_buf(), link.to_path_buf()))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.record(Call::Sethostname(name.to_string()))
    }

    fn loopback_up(&self) -> io::Result<()> {
        self.record(Call::LoopbackUp)
    }

    fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()> {
        self.record(Call::ParentDeathSignal(signal))
    }

    fn close_fds_on_exec(&self, first: u32) -> io::Result<()> {
        self.record(Call::CloseFdsOnExec(first))
    }

    fn restrict_bounding_set(&self, keep: u64) -> io::Result<()> {
        self.record(Call::BoundingSet(keep))
    }

    fn clear_ambient_capabilities(&self) -> io::Result<()> {
        self.record(Call::ClearAmbient)
    }

    fn setgroups(&self, gids: &[u32]) -> io::Result<()> {
        self.record(Call::Setgroups(gids.to_vec()))
    }

    fn setresgid(&self, gid: u32) -> io::Result<()> {
        self.record(Call::Setresgid(gid))
    }

    fn setresuid(&self, uid: u32) -> io::Result<()> {
        self.record(Call::Setresuid(uid))
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
        self.record(Call::Capset {
            effective,
            permitted,
            inheritable,
        })
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        self.record(Call::NoNewPrivs)
    }

    fn seccomp(&self, filter: &BpfProgram) -> io::Result<()> {
        self.record(Call::Seccomp(filter.len()))
    }

    fn execve(&self, path: &Path, argv: &[String], env: &[String]) -> io::Error {
        match self.record(Call::Execve(
            path.to_path_buf(),
            argv.to_vec(),
            env.to_vec(),
        )) {
            Err(e) => e,
            // A recorded exec "succeeds" by returning this marker error to the caller.
            Ok(()) => io::Error::other("recorded execve"),
        }
    }
}
