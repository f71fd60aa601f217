//! The one error type of the store: every variant says what went wrong and where.

use std::{io, path::PathBuf};

use crate::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: String },

    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },

    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("unsafe path in {archive}: {path:?} {reason}")]
    UnsafePath {
        archive: String,
        path: String,
        reason: String,
    },

    #[error("{what} is truncated: {detail}")]
    Truncated { what: String, detail: String },

    #[error("malformed tar in {what}: {detail}")]
    BadTar { what: String, detail: String },

    #[error(
        "unknown compression in {what}: the first bytes are {magic} (expected plain tar, gzip or zstd)"
    )]
    UnknownCompression { what: String, magic: String },

    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid archive {what}: {detail}")]
    BadArchive { what: String, detail: String },

    #[error("{archive} names {file:?}, which the archive does not contain")]
    MissingFile { archive: String, file: String },

    #[error("no such image: {0}")]
    ImageNotFound(String),

    #[error("{0}")]
    Ambiguous(String),

    #[error("invalid image {what}: {detail}")]
    BadImage { what: String, detail: String },

    #[error("the store at {path} is not an OCI image layout: {detail}")]
    BadLayout { path: PathBuf, detail: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }

    pub fn archive(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::BadArchive {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Errors that travel through `io::Read`/`io::Write` adapters come back as
    /// `io::Error`; this recovers the store error if one is inside.
    pub fn from_io(context: impl Into<String>, err: io::Error) -> Self {
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = err.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::io(context, err)
    }

    /// Wrap a store error so it can pass through an `io::Read`/`io::Write` boundary.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Attach context to io results in one call.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::from_io(context(), err))
    }
}
