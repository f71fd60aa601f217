//! The one system call std lacks here: mknod, for device nodes and FIFOs copied from
//! another stage's tree or an archive.

use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::Path};

/// Create a node of `kind` (`libc::S_IFCHR`, `S_IFBLK` or `S_IFIFO`); never follows a
/// symlink (mknod creates, it does not open).
pub(crate) fn mknod(path: &Path, kind: u32, mode: u32, rdev: u64) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))?;
    // SAFETY: a valid C string; plain integer arguments.
    let ret = unsafe { libc::mknod(c.as_ptr(), (kind | (mode & 0o7777)) as libc::mode_t, rdev) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
