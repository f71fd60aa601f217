//! The errors of snapshots: each says what was being done to which path.

use std::{io, path::PathBuf};

use kiln_store::Digest;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] kiln_store::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("no blob is known for the layer with diffID {0}")]
    UnknownLayer(Digest),

    #[error("layer {diff_id} unpacked to a tar whose digest is {actual}")]
    DiffIdMismatch { diff_id: Digest, actual: Digest },

    #[error("mounting an overlay of {lowers} layers on {target}: {source}")]
    Mount {
        target: PathBuf,
        lowers: usize,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

impl SnapshotError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> SnapshotError {
        SnapshotError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Attach a path-naming context to io results.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| SnapshotError::io(context(), e))
    }
}
