//! `FilesError`: what can go wrong in a COPY or ADD. The caller adds the Dockerfile's
//! file:line; these messages say which source pattern, which path, and why.

use std::{io, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A source named without wildcards is not there (or .dockerignore hides it).
    #[error("{pattern:?}: not found in {place}")]
    NotFound {
        pattern: String,
        place: &'static str,
    },
    #[error("invalid --chmod={value:?}: {why}")]
    Chmod { value: String, why: String },
    #[error("invalid --chown={value:?}: {source}")]
    Chown {
        value: String,
        source: kiln_sandbox::UserError,
    },
    /// A flag or argument combination BuildKit refuses too.
    #[error("{0}")]
    Invalid(String),
    #[error("{keyword} {url}: git repositories are not supported yet (clone it in a RUN step)")]
    Git { keyword: &'static str, url: String },
    /// An ADD URL that could not be fetched: the URL and the status or transport failure.
    #[error("fetching {url}: {why}")]
    Fetch { url: String, why: String },
    /// `--checksum` and the content disagree; nothing was written.
    #[error("digest mismatch for {url}: got {actual}, expected {expected} (--checksum)")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot copy to {path}: {why}")]
    Conflict { path: String, why: &'static str },
    #[error("{path}: too many levels of symbolic links")]
    Loop { path: String },
    #[error("ADD {archive}: {why}")]
    Archive { archive: String, why: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

impl FilesError {
    pub(crate) fn io(path: impl AsRef<Path>, source: io::Error) -> FilesError {
        FilesError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, FilesError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, FilesError> {
        self.map_err(|e| FilesError::io(path, e))
    }
}
