//! `BlobStore`: `blobs/<algorithm>/<hex>` files (sha256, or sha512 for content others
//! addressed so) that appear only once their bytes match their digest.
//!
//! Every write goes to a staging file beside the store, is hashed while it streams, is
//! fsynced, and is renamed into place only after the digest is known (and, when one was
//! expected, matched). A crash or a mismatch leaves at most a staging file, never a blob.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use tempfile::TempPath;

use crate::{
    Algorithm, Digest, DigestWriter, Error, Result,
    durable::{Writeback, rename_into_place, sync_dir},
    error::IoContext,
};

/// Big enough that a blob moves in few syscalls, small enough that RSS does not care.
pub const IO_BUFFER: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: PathBuf,
    staging: PathBuf,
}

impl BlobStore {
    /// `dir` holds `sha256/<hex>` (and `sha512/<hex>` once such a blob arrives);
    /// `staging` must be on the same filesystem.
    pub fn open(dir: impl Into<PathBuf>, staging: impl Into<PathBuf>) -> Result<BlobStore> {
        let store = BlobStore {
            dir: dir.into(),
            staging: staging.into(),
        };
        let algo_dir = store.dir.join(Digest::ALGORITHM);
        fs::create_dir_all(&algo_dir).ctx(|| format!("creating {}", algo_dir.display()))?;
        fs::create_dir_all(&store.staging)
            .ctx(|| format!("creating {}", store.staging.display()))?;
        Ok(store)
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.algorithm()).join(digest.hex())
    }

    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        Ok(self.metadata(digest)?.len())
    }

    fn metadata(&self, digest: &Digest) -> Result<fs::Metadata> {
        fs::metadata(self.path(digest)).map_err(|e| missing_or_io(digest, e))
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.path(digest)).map_err(|e| missing_or_io(digest, e))
    }

    /// Read a small blob (manifest, config) whole, checking its digest and a size limit.
    pub fn read_verified(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("reading blob {digest}"))?;
        if bytes.len() as u64 > limit {
            return Err(Error::BadImage {
                what: digest.to_string(),
                detail: format!("larger than the {limit}-byte limit for a JSON document"),
            });
        }
        let actual = Digest::of_with(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", self.path(digest).display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// A writer whose bytes become a blob on `commit`, named by their sha256.
    pub fn writer(&self) -> Result<BlobWriter> {
        self.writer_for(Algorithm::Sha256)
    }

    /// A writer that hashes with `algorithm`: for bytes that must match a digest someone
    /// else chose (`writer_for(expected.algorithm())`).
    pub fn writer_for(&self, algorithm: Algorithm) -> Result<BlobWriter> {
        let (file, path) = self.staging_file()?;
        Ok(BlobWriter {
            inner: DigestWriter::with_algorithm(
                BufWriter::with_capacity(IO_BUFFER, file),
                algorithm,
            ),
            path,
        })
    }

    /// A new staging file, deleted when its path is dropped, for writers that hash on
    /// their own (see `ChunkWriter`).
    fn staging_file(&self) -> Result<(Writeback, TempPath)> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.staging)
            .ctx(|| format!("creating a staging file in {}", self.staging.display()))?;
        let (file, path) = file.into_parts();
        Ok((Writeback::new(file), path))
    }

    /// A staging writer that takes whole chunks and writes them on a thread of its own,
    /// handing each chunk on to `next` once written: hashing in the caller and the copy
    /// into the page cache then run on two cores instead of one after the other.
    pub fn chunk_writer(&self, next: ChunkSink) -> Result<ChunkWriter> {
        let (mut file, path) = self.staging_file()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let handle = std::thread::spawn(move || -> io::Result<File> {
            for chunk in rx {
                file.write_all(&chunk)?;
                next.pass(chunk);
            }
            Ok(file.file)
        });
        Ok(ChunkWriter {
            hasher: DigestWriter::new(io::sink()),
            tx: Some(tx),
            handle: Some(handle),
            path,
        })
    }

    /// Store small bytes (a manifest, a config) and return their sha256 digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        self.put_bytes_as(Algorithm::Sha256, bytes)
    }

    /// Store small bytes under their digest in `algorithm` (a document copied as it was
    /// addressed).
    pub fn put_bytes_as(&self, algorithm: Algorithm, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_with(algorithm, bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer_for(algorithm)?;
        w.write_all(bytes).ctx(|| "writing a blob".to_string())?;
        w.finish()?.commit(self, Some(&digest))?;
        Ok(digest)
    }

    pub fn remove(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing blob {digest}"), e))
            }
            _ => Ok(()),
        }
    }

    /// Every blob in the store (files whose names are not digests are left alone).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for algorithm in Algorithm::ALL {
            let dir = self.dir.join(algorithm);
            let entries = match fs::read_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other.ctx(|| format!("listing {}", dir.display()))?,
            };
            for entry in entries {
                let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
                if let Some(d) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::from_parts(algorithm.as_str(), n).ok())
                {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn missing_or_io(digest: &Digest, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::BadImage {
            what: digest.to_string(),
            detail: "blob is missing from the store".into(),
        }
    } else {
        Error::io(format!("opening blob {digest}"), e)
    }
}

/// Streams bytes into a staging file, hashing them on the way.
pub struct BlobWriter {
    inner: DigestWriter<BufWriter<Writeback>>,
    path: TempPath,
}

impl BlobWriter {
    pub fn size(&self) -> u64 {
        self.inner.size()
    }

    /// Flush and fsync; the bytes are now durable but not yet visible.
    pub fn finish(self) -> Result<StagedBlob> {
        let mut staged = self.finish_unsynced()?;
        staged.sync()?;
        Ok(staged)
    }

    /// Flush, leaving the fsync to `StagedBlob::sync` or `commit`: a caller with more to
    /// write can go on while the kernel writes this back, and sync it later.
    pub fn finish_unsynced(self) -> Result<StagedBlob> {
        let (digest, size, buf) = self.inner.finish();
        let file = buf
            .into_inner()
            .map_err(|e| Error::io("flushing a staging file", e.into_error()))?
            .file;
        Ok(StagedBlob {
            digest,
            size,
            path: self.path,
            unsynced: Some(file),
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where a `ChunkWriter` hands chunks once they are written.
pub enum ChunkSink {
    /// Another stage that needs every chunk (blocks while it is busy; dropped if it ended).
    Next(std::sync::mpsc::SyncSender<Vec<u8>>),
    /// A pool of spare buffers (never blocks).
    Pool(std::sync::mpsc::SyncSender<Vec<u8>>),
}

impl ChunkSink {
    fn pass(&self, chunk: Vec<u8>) {
        match self {
            ChunkSink::Next(tx) => {
                let _ = tx.send(chunk);
            }
            ChunkSink::Pool(tx) => {
                let _ = tx.try_send(chunk);
            }
        }
    }
}

/// Hashes chunks in the caller's thread and writes them in its own; see
/// `BlobStore::chunk_writer`.
pub struct ChunkWriter {
    hasher: DigestWriter<io::Sink>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<io::Result<File>>>,
    path: TempPath,
}

impl ChunkWriter {
    pub fn write_chunk(&mut self, chunk: Vec<u8>) -> Result<()> {
        self.hasher
            .write_all(&chunk)
            .expect("hashing into a sink cannot fail");
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok());
        if !sent {
            // The writer thread stopped: its error says why.
            self.join()?;
            return Err(Error::io(
                "writing a staging file",
                io::Error::other("the staging writer stopped"),
            ));
        }
        Ok(())
    }

    fn join(&mut self) -> Result<File> {
        self.tx = None;
        let handle = self.handle.take().ok_or_else(|| {
            Error::io(
                "writing a staging file",
                io::Error::other("the staging writer stopped"),
            )
        })?;
        handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the staging writer panicked")))
            .ctx(|| "writing a staging file".to_string())
    }

    /// Wait for the writes, fsync; the blob is durable but not yet visible.
    pub fn finish(mut self) -> Result<StagedBlob> {
        let file = self.join()?;
        file.sync_all()
            .ctx(|| "syncing a staging file".to_string())?;
        let (digest, size, _) = self.hasher.finish();
        Ok(StagedBlob {
            digest,
            size,
            path: self.path,
            unsynced: None,
        })
    }
}

/// A durable staging file with a known digest; dropped without `commit`, it is deleted.
#[derive(Debug)]
pub struct StagedBlob {
    pub digest: Digest,
    pub size: u64,
    path: TempPath,
    /// The staging file while it still needs an fsync.
    unsynced: Option<File>,
}

impl StagedBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the bytes durable (if `finish_unsynced` left that undone).
    pub fn sync(&mut self) -> Result<()> {
        if let Some(file) = self.unsynced.take() {
            file.sync_all()
                .ctx(|| "syncing a staging file".to_string())?;
        }
        Ok(())
    }

    /// Check the digest when one was expected, fsync if not done yet, then rename the
    /// blob into place: a blob is never visible under its digest before it is durable.
    pub fn commit(mut self, store: &BlobStore, expected: Option<&Digest>) -> Result<Digest> {
        if let Some(expected) = expected
            && expected != &self.digest
        {
            return Err(Error::DigestMismatch {
                what: "blob".into(),
                expected: expected.clone(),
                actual: self.digest,
            });
        }
        self.sync()?;
        let dest = store.path(&self.digest);
        if let Some(parent) = dest.parent()
            && !parent.is_dir()
        {
            // `open` made the sha256 directory; another algorithm's appears with its
            // first blob, and the directory holding it must be durable too.
            fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
            if let Some(blobs) = parent.parent() {
                sync_dir(blobs)?;
            }
        }
        // Blobs are immutable content: readable by all, written by none.
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o444))
            .ctx(|| format!("setting permissions on {}", self.path.display()))?;
        // Renaming over an existing blob is fine: same digest, same bytes.
        rename_into_place(self.path, &dest)?;
        Ok(self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs"), dir.path().join("staging")).unwrap();
        (dir, store)
    }

    #[test]
    fn blob_appears_only_after_commit() {
        let (_dir, store) = store();
        let mut w = store.writer().unwrap();
        w.write_all(b"hello").unwrap();
        let staged = w.finish().unwrap();
        assert!(!store.contains(&staged.digest));
        let digest = staged.commit(&store, Some(&Digest::of(b"hello"))).unwrap();
        assert!(store.contains(&digest));
        assert_eq!(store.read_verified(&digest, 100).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![digest]);
    }

    #[test]
    fn mismatch_leaves_nothing_behind() {
        let (_dir, store) = store();
        let mut w = store.writer().unwrap();
        w.write_all(b"hello").unwrap();
        let err = w
            .finish()
            .unwrap()
            .commit(&store, Some(&Digest::of(b"other")))
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(store.staging_dir()).unwrap().count(), 0);
    }

    #[test]
    fn sha512_blobs_are_written_checked_and_listed() {
        let (_dir, store) = store();
        let expected = Digest::of_with(Algorithm::Sha512, b"hello");
        let mut w = store.writer_for(expected.algorithm()).unwrap();
        w.write_all(b"hello").unwrap();
        let digest = w.finish().unwrap().commit(&store, Some(&expected)).unwrap();
        assert_eq!(digest, expected);
        assert!(
            store
                .path(&digest)
                .ends_with(format!("sha512/{}", digest.hex()))
        );
        assert_eq!(store.read_verified(&digest, 100).unwrap(), b"hello");
        let sha256 = store.put_bytes(b"hello").unwrap();
        assert_eq!(store.list().unwrap(), vec![sha256, digest]);
        // A sha256 writer cannot produce a blob expected under a sha512 digest.
        let mut w = store.writer().unwrap();
        w.write_all(b"hello").unwrap();
        let err = w
            .finish()
            .unwrap()
            .commit(&store, Some(&expected))
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn dropped_writer_removes_its_staging_file() {
        let (_dir, store) = store();
        let mut w = store.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(store.staging_dir()).unwrap().count(), 0);
    }
}
