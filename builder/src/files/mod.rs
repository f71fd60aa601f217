//! COPY and ADD with docker's (BuildKit's) semantics: which files a transfer selects
//! (`select`), the cache input over exactly those (`digest`), and writing them into a
//! step's root (`apply`, `write`, `archive` for ADD's local tar archives). Neither side's
//! symlinks can take a read or a write outside the context, the source tree or the root
//! (`paths`). ADD's http(s) sources are fetched once per build into [`Downloads`]
//! (`remote`, `fetch`). The executor calls [`input_digest`] for the cache key and
//! [`apply`] on a miss; `--link` is recorded in [`Transfer`] and is the executor's to
//! honour (apply into an empty root).

mod apply;
mod archive;
mod chmod;
mod digest;
mod error;
mod fetch;
mod owner;
mod paths;
mod remote;
mod select;
mod sys;
mod transfer;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use apply::apply;
pub use chmod::Chmod;
pub use digest::{input_digest, url_digest};
pub use error::FilesError;
pub use remote::Downloads;
pub use transfer::Transfer;

use crate::context::Dockerignore;

/// Where COPY/ADD read from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// The build context directory, filtered by its .dockerignore rules.
    Context {
        dir: &'a Path,
        ignore: &'a Dockerignore,
    },
    /// The root file system of another stage or image (`COPY --from`): files keep their
    /// owners there.
    Tree(&'a Path),
}
