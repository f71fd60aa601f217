//! Scratch directories (`snapshots/scratch/ID/`): a step's upper, work and merged dirs, a
//! copied root, or a layer being unpacked. Each is guarded by `ID.lock`, created and
//! locked (flock) before the directory exists and held for its whole life, so that the
//! kernel releases it when its process dies, even by SIGKILL: `cleanup_stale` removes
//! exactly the scratch directories whose lock it can take, unmounting what is mounted
//! below them first (found in /proc/self/mountinfo).

use std::{
    fs::{self, File, TryLockError},
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{
    error::{Context, Result},
    sys,
};

const LOCK_SUFFIX: &str = ".lock";

/// A locked scratch directory; removed (after unmounting anything below it) on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
}

impl Scratch {
    /// A new, empty scratch directory under `scratch_root`; `label` shows in its name.
    pub fn create(scratch_root: &Path, label: &str) -> Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for attempt in 0..100u32 {
            let id = format!("{label}-{}-{nanos:x}-{attempt}", std::process::id());
            let lock_path = scratch_root.join(format!("{id}{LOCK_SUFFIX}"));
            let file = match File::options()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx(|| format!("creating {}", lock_path.display())),
            };
            file.lock()
                .ctx(|| format!("locking {}", lock_path.display()))?;
            // A cleanup may have taken the lock between create and lock, and removed the
            // file: then this lock guards nothing. Try another name.
            let still_ours = fs::metadata(&lock_path)
                .is_ok_and(|m| file.metadata().is_ok_and(|f| f.ino() == m.ino()));
            if !still_ours {
                continue;
            }
            let dir = scratch_root.join(&id);
            fs::create_dir(&dir).ctx(|| format!("creating {}", dir.display()))?;
            return Ok(Scratch {
                dir,
                lock_path,
                lock: Some(file),
            });
        }
        Err(super::SnapshotError::io(
            format!("creating a scratch directory in {}", scratch_root.display()),
            io::Error::other("no free name after 100 attempts"),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Unmount what is below, remove the directory, then the lock.
    pub fn remove(mut self) -> Result<()> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<()> {
        if self.lock.is_none() {
            return Ok(());
        }
        remove_locked(&self.dir, &self.lock_path)?;
        self.lock = None;
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.remove_now();
    }
}

/// Remove a scratch directory whose lock the caller holds.
fn remove_locked(dir: &Path, lock_path: &Path) -> Result<()> {
    unmount_below(dir)?;
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).ctx(|| format!("removing {}", dir.display()));
        }
        _ => {}
    }
    match fs::remove_file(lock_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("removing {}", lock_path.display()))
        }
        _ => Ok(()),
    }
}

/// What `cleanup_stale` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub unmounted: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

/// Remove the scratch directories (and the mounts in them) that a killed build left under
/// `scratch_root`. Directories of live processes are left alone: their locks are held.
pub fn cleanup_stale(scratch_root: &Path) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let entries = match fs::read_dir(scratch_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e).ctx(|| format!("reading {}", scratch_root.display())),
    };
    let mut ids = std::collections::BTreeSet::new();
    for entry in entries {
        let name = entry
            .ctx(|| format!("reading {}", scratch_root.display()))?
            .file_name();
        let name = name.to_string_lossy();
        ids.insert(name.strip_suffix(LOCK_SUFFIX).unwrap_or(&name).to_string());
    }
    for id in ids {
        let (dir, lock_path) = (
            scratch_root.join(&id),
            scratch_root.join(format!("{id}{LOCK_SUFFIX}")),
        );
        // Opening creates a missing lock: a directory without one is an orphan (its lock
        // is made before it), and taking the lock now keeps a racing cleanup out.
        let lock = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .ctx(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue, // alive
            Err(TryLockError::Error(e)) => {
                return Err(e).ctx(|| format!("locking {}", lock_path.display()));
            }
        }
        report.unmounted.extend(mounts_below(&dir)?);
        let existed = dir.exists();
        remove_locked(&dir, &lock_path)?;
        if existed {
            report.removed.push(dir);
        }
    }
    Ok(report)
}

/// Unmount every mount at or below `dir`, deepest first; the paths unmounted.
fn unmount_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut mounts = mounts_below(dir)?;
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for mount in &mounts {
        unmount(mount)?;
    }
    Ok(mounts)
}

/// Unmount `target`; a mount kept busy for a moment (a process exiting) is retried, then
/// detached so that it goes once the last user leaves.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    for _ in 0..20 {
        match sys::unmount(target, false) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()), // not mounted
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e).ctx(|| format!("unmounting {}", target.display())),
        }
    }
    sys::unmount(target, true).ctx(|| format!("detaching {}", target.display()))
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
pub fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let text = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| "reading /proc/self/mountinfo".into()),
    };
    // Mount points are absolute and canonical; so must the prefix be.
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|mount| mount.starts_with(&dir))
        .collect())
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape(r"/tail\04"), r"/tail\04");
    }

    #[test]
    fn live_scratch_dirs_stay_and_orphans_go() {
        let t = tempfile::tempdir().unwrap();
        let live = Scratch::create(t.path(), "live").unwrap();
        fs::write(live.path().join("f"), b"x").unwrap();
        // An orphan: a directory whose process died (no lock holder), and a lone lock.
        fs::create_dir(t.path().join("dead-1")).unwrap();
        fs::write(t.path().join("dead-1/f"), b"x").unwrap();
        fs::write(t.path().join("dead-2.lock"), b"").unwrap();
        let report = cleanup_stale(t.path()).unwrap();
        assert_eq!(report.removed, [t.path().join("dead-1")]);
        let mut left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        assert_eq!(left, [live.path().to_path_buf(), live.lock_path.clone()]);
        let dir = live.path().to_path_buf();
        live.remove().unwrap();
        assert!(!dir.exists());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
