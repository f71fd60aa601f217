//! COPY and ADD for the local worker: the `files` module reading the build context (after
//! `.dockerignore`) or another stage's root, writing into the step's root.

use std::path::Path;

use kiln_store::Digest;

use super::{CopyFrom, CopyOp, WorkerError};
use crate::context::Dockerignore;

/// The cache input of a COPY or ADD: what it reads from the context. A `--from` source
/// needs none: the other stage's cache key already stands for its whole file system.
pub(super) fn inputs(
    _context: &Path,
    _ignore: &Dockerignore,
    op: &CopyOp<'_>,
) -> Result<Digest, WorkerError> {
    match op.from {
        CopyFrom::State(_) => Ok(Digest::of(b"")),
        CopyFrom::Context => Err(unsupported(op)),
    }
}

pub(super) fn apply(
    _context: &Path,
    _ignore: &Dockerignore,
    _from_root: Option<&Path>,
    op: &CopyOp<'_>,
    _root: &Path,
) -> Result<(), WorkerError> {
    Err(unsupported(op))
}

fn unsupported(op: &CopyOp<'_>) -> WorkerError {
    WorkerError::new(format!(
        "{} is not supported yet",
        op.instruction.keyword.as_str()
    ))
}
