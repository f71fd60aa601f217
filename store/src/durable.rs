//! `DurableFile`: a file that appears under its name whole and on disk, or not at all.
//!
//! Every file kiln writes by name — a layout's `oci-layout` and `index.json`, the
//! archives of `save -o`, `export -o` and `copy`, the credentials file — goes one way: a
//! temporary file in the target's own directory (so the rename never crosses a
//! filesystem), written, fsynced, renamed over the target, and the directory fsynced so
//! the new name survives a power cut as well as the bytes. The mode is given when the
//! temporary file is created, less the umask as for any plain create, so a secret is
//! never readable by others, not even while it is written. A `DurableFile` dropped
//! before `commit` (an error on the way) removes its temporary file; the target keeps
//! its old content.
//!
//! The pieces it is built from serve the blob stores too: `sync_dir`, `start_writeback`
//! (a head start for the final fsync) and `rename_into_place`.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    os::{fd::AsRawFd, unix::fs::PermissionsExt},
    path::{Path, PathBuf},
};

use tempfile::TempPath;

use crate::{Error, Result, error::IoContext};

/// Big enough that gigabytes move in few syscalls, small enough that RSS does not care.
const BUFFER: usize = 1 << 20;

/// Who may read a file kiln writes (before the umask takes its share).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// 0644: archives and layouts, like any file a user writes.
    Everyone,
    /// 0600: secrets (the credentials file).
    Owner,
}

impl Readers {
    pub fn mode(self) -> u32 {
        match self {
            Readers::Everyone => 0o644,
            Readers::Owner => 0o600,
        }
    }
}

/// A streaming writer whose bytes replace `dest` on `commit`; see the module header.
pub struct DurableFile {
    out: BufWriter<Writeback>,
    temp: TempPath,
    dest: PathBuf,
}

impl DurableFile {
    /// A temporary file beside `dest` (its directory must exist), created with `readers`'
    /// mode less the umask.
    pub fn create(dest: impl Into<PathBuf>, readers: Readers) -> Result<DurableFile> {
        let dest = dest.into();
        let dir = parent_of(&dest).to_path_buf();
        // Named after the target so a leftover from a crash says what it was.
        let prefix = format!(
            ".kiln-{}-",
            dest.file_name().unwrap_or_default().to_string_lossy()
        );
        let (file, temp) = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(readers.mode()))
            .tempfile_in(&dir)
            .ctx(|| format!("creating a temporary file in {}", dir.display()))?
            .into_parts();
        Ok(DurableFile {
            out: BufWriter::with_capacity(BUFFER, Writeback::new(file)),
            temp,
            dest,
        })
    }

    /// Where the file will appear.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush, fsync, rename over the target, fsync its directory: once this returns the
    /// file is there whole and survives a power cut. On an error nothing new is visible
    /// (or, if only the directory fsync failed, the file is there but may not survive).
    pub fn commit(self) -> Result<()> {
        let DurableFile { out, temp, dest } = self;
        let writing = || format!("writing {}", dest.display());
        let file = out
            .into_inner()
            .map_err(|e| Error::from_io(writing(), e.into_error()))?
            .file;
        file.sync_all().ctx(writing)?;
        drop(file);
        rename_into_place(temp, &dest)
    }
}

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Replace `dest` with `bytes`, durably; see `DurableFile`.
pub fn write_atomically(dest: &Path, readers: Readers, bytes: &[u8]) -> Result<()> {
    let mut file = DurableFile::create(dest, readers)?;
    file.write_all(bytes)
        .ctx(|| format!("writing {}", dest.display()))?;
    file.commit()
}

/// Rename a durable temporary file over `dest` and fsync the directory that holds the new
/// name. A failed rename removes the temporary file.
pub(crate) fn rename_into_place(temp: TempPath, dest: &Path) -> Result<()> {
    temp.persist(dest)
        .map_err(|e| Error::io(format!("renaming into {}", dest.display()), e.error))?;
    sync_dir(parent_of(dest))
}

/// Make a rename durable: fsync the directory that holds the new name.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

/// The directory a relative or absolute file name lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Ask the kernel to start writing `len` bytes of `file` from `offset` back to disk,
/// without waiting: the fsync that makes the file durable then finds little left to do,
/// and disk writes overlap whatever produces the bytes. Only a head start: durability
/// still comes from the fsync, so a filesystem that refuses it is fine.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    // SAFETY: a plain syscall on a file descriptor the caller keeps open; no memory is
    // passed.
    let _ = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// How much written data may wait in the page cache before writeback is started.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A file that starts writeback every few MiB as it grows (RocksDB's `bytes_per_sync`,
/// for the same reason): see `start_writeback`.
pub(crate) struct Writeback {
    pub(crate) file: File,
    written: u64,
    started: u64,
}

impl Writeback {
    pub(crate) fn new(file: File) -> Writeback {
        Writeback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests;
