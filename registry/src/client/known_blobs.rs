//! `KnownBlobs`: which repository of a registry last held a blob, remembered across runs
//! so a push into another repository of the same registry can mount it instead of
//! uploading it again (skopeo keeps the same hint in its blob-info cache). Only a hint:
//! a mount the registry refuses falls back to an upload.

use std::{fs, path::PathBuf};

use kiln_store::Digest;

#[derive(Clone, Debug)]
pub struct KnownBlobs {
    dir: PathBuf,
}

impl KnownBlobs {
    pub fn new(dir: impl Into<PathBuf>) -> KnownBlobs {
        KnownBlobs { dir: dir.into() }
    }

    fn path(&self, host: &str, digest: &Digest) -> PathBuf {
        // Host names hold no '/', but a port's ':' is awkward in paths; keep it readable.
        self.dir.join(host.replace(':', "_")).join(digest.hex())
    }

    pub fn lookup(&self, host: &str, digest: &Digest) -> Option<String> {
        let text = fs::read_to_string(self.path(host, digest)).ok()?;
        let repository = text.trim();
        kiln_store::validate_repository_name(repository).ok()?;
        Some(repository.to_string())
    }

    /// Best effort: a hint that fails to be written costs a later upload, nothing more.
    pub fn record(&self, host: &str, repository: &str, digest: &Digest) {
        let path = self.path(host, digest);
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".{}.{}", digest.hex(), std::process::id()));
        if fs::write(&tmp, repository).is_ok() && fs::rename(&tmp, &path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_repository_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownBlobs::new(dir.path());
        let d = Digest::of(b"x");
        assert_eq!(known.lookup("127.0.0.1:5000", &d), None);
        known.record("127.0.0.1:5000", "team/a", &d);
        known.record("127.0.0.1:5000", "team/b", &d);
        assert_eq!(
            known.lookup("127.0.0.1:5000", &d).as_deref(),
            Some("team/b")
        );
        assert_eq!(known.lookup("other:5000", &d), None);
    }
}
