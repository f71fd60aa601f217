//! Directory-relative file-system calls for the unpacker: every name is one path component
//! resolved inside a directory held open, and none of these calls follows a symlink.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a name"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh descriptor the kernel just returned, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The destination root itself (the caller chose it, so a symlink to it is followed).
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid C string; flags only.
    owned(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// A subdirectory; fails with ELOOP or ENOTDIR when `name` is a symlink or not a directory.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and C string.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
}

/// The file type bits (`S_IFMT`) of `name`, without following it; `None` when absent.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<u32>> {
    let c = cstring(name)?;
    // SAFETY: stat is plain data, filled by the kernel on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out pointer.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(ret) {
        Ok(()) => Ok(Some(st.st_mode & libc::S_IFMT)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> io::Result<()> {
    let c = cstring(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: a valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// A new regular file, created exclusively (never opened through an existing name).
pub(crate) fn create_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<File> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and C string.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    Ok(File::from(fd))
}

pub(crate) fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let (t, c) = (cstring(target)?, cstring(name)?);
    // SAFETY: a valid descriptor and C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// A hard link `dir/name` to `from_dir/from_name` (a symlink there is linked, not followed).
pub(crate) fn link_at(
    from_dir: BorrowedFd<'_>,
    from_name: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> io::Result<()> {
    let (f, c) = (cstring(from_name)?, cstring(name)?);
    // SAFETY: valid descriptors and C strings.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            0,
        )
    })
}

/// A device node or fifo; `kind` is `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
pub(crate) fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let c = cstring(name)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid descriptor and C string.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            (kind | 0o600) as libc::mode_t,
            dev,
        )
    })
}

/// lchown, relative to `dir`.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// chmod of a name known not to be a symlink (Linux cannot chmod a symlink itself).
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and C string.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

fn timespecs(mtime: (i64, u32)) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime.0 as libc::time_t,
        tv_nsec: i64::from(mtime.1) as _,
    };
    [t, t]
}

/// Set atime and mtime of `name` itself (a symlink's own times, not its target's).
pub(crate) fn utimes_at(dir: BorrowedFd<'_>, name: &[u8], mtime: (i64, u32)) -> io::Result<()> {
    let c = cstring(name)?;
    let times = timespecs(mtime);
    // SAFETY: a valid descriptor, C string and two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn futimes(fd: BorrowedFd<'_>, mtime: (i64, u32)) -> io::Result<()> {
    let times = timespecs(mtime);
    // SAFETY: a valid descriptor and two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cstring(name.as_bytes())?;
    // SAFETY: a valid descriptor, C string and buffer.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}
