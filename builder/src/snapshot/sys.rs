//! The few system calls snapshots need beyond std: mount(2) and umount2(2) of overlayfs,
//! mknod, times of a symlink itself, syncfs. Plain functions over paths.

use std::{ffi::CString, fs::File, io, os::fd::AsRawFd, path::Path};

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Mount an overlay on `target` with `options` (`lowerdir=…,upperdir=…,workdir=…`).
pub(crate) fn mount_overlay(target: &Path, options: &str) -> io::Result<()> {
    let target = cpath(target)?;
    let data = CString::new(options)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in mount options"))?;
    // SAFETY: valid C strings; overlayfs reads `data` as a string of options.
    check(unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    })
}

/// Unmount `target`; `detach` (MNT_DETACH) when it stays busy.
pub(crate) fn unmount(target: &Path, detach: bool) -> io::Result<()> {
    let target = cpath(target)?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid C string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// The mount options of one mount(2) call must fit in a page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// A device node or fifo; `kind` is `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
pub(crate) fn mknod(path: &Path, kind: u32, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: a valid C string.
    check(unsafe { libc::mknod(c.as_ptr(), (kind | (mode & 0o7777)) as libc::mode_t, rdev) })
}

/// Set atime and mtime of `path` itself, never of a symlink's target.
pub(crate) fn lutimes(path: &Path, mtime: (i64, i64)) -> io::Result<()> {
    let c = cpath(path)?;
    let t = libc::timespec {
        tv_sec: mtime.0 as libc::time_t,
        tv_nsec: mtime.1 as _,
    };
    let times = [t, t];
    // SAFETY: a valid C string and two timespecs.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Flush the file system holding `dir`: an unpacked layer is renamed into place only once
/// its contents are on disk, so a crash never leaves a half-empty layer under its name.
pub(crate) fn syncfs(dir: &Path) -> io::Result<()> {
    let file = File::open(dir)?;
    // SAFETY: a valid descriptor.
    check(unsafe { libc::syncfs(file.as_raw_fd()) })
}
