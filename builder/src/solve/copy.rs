//! COPY and ADD for the local worker: the `files` module reading the build context (after
//! `.dockerignore`) or another stage's root, writing into the step's root.

use std::path::Path;

use kiln_store::Digest;

use super::{CopyFrom, CopyOp, WorkerError};
use crate::{
    context::Dockerignore,
    files::{self, Downloads, FilesError, Source, Transfer},
};

fn transfer(op: &CopyOp<'_>) -> Result<Transfer, WorkerError> {
    Transfer::from_instruction(op.instruction).map_err(failed(op))
}

fn failed<'a>(op: &'a CopyOp<'_>) -> impl Fn(FilesError) -> WorkerError + 'a {
    move |e| WorkerError::new(format!("{} failed: {e}", op.instruction.keyword.as_str()))
}

/// The cache input of a COPY or ADD: what it reads from the context, and its URLs (their
/// checksums, else their content, fetched into `downloads` for `apply` to reuse). A
/// `--from` source needs only the URLs: the other stage's cache key already stands for
/// its whole file system (and the instruction's own text is in the key).
pub(super) fn inputs(
    context: &Path,
    ignore: &Dockerignore,
    downloads: &mut Downloads,
    op: &CopyOp<'_>,
) -> Result<Digest, WorkerError> {
    let transfer = transfer(op)?;
    match op.from {
        // Without URLs, sha256 of nothing (what this was before URLs were fetched).
        CopyFrom::State(_) => files::url_digest(&transfer, downloads).map_err(failed(op)),
        CopyFrom::Context => {
            let source = Source::Context {
                dir: context,
                ignore,
            };
            files::input_digest(&source, &transfer, downloads).map_err(failed(op))
        }
    }
}

/// Copy into `root`, from the context or from `from_root` (a `--from` stage's or image's
/// file system).
pub(super) fn apply(
    context: &Path,
    ignore: &Dockerignore,
    from_root: Option<&Path>,
    downloads: &mut Downloads,
    op: &CopyOp<'_>,
    root: &Path,
) -> Result<(), WorkerError> {
    let transfer = transfer(op)?;
    let source = match from_root {
        Some(tree) => Source::Tree(tree),
        None => Source::Context {
            dir: context,
            ignore,
        },
    };
    files::apply(&source, &transfer, root, &op.workdir, downloads).map_err(failed(op))
}
