//! One module per subcommand; each has `Args` (clap) and `run`.

pub mod build;
pub mod copy;
pub mod dockerfile;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod prune;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rmi;
pub mod run;
pub mod save;
pub mod tag;
pub mod transfer;

use std::{collections::HashSet, path::Path};

use anyhow::{Context, Result};
use kiln_builder::cache::CacheIndex;
use kiln_store::{Digest, ImageStore};

/// The layers the build cache names: `rmi` and `prune` keep them (`prune --cache` drops
/// the cache first).
pub fn cache_roots(root: &Path) -> kiln_store::Result<HashSet<Digest>> {
    let dir = CacheIndex::dir_in(root);
    if !dir.is_dir() {
        return Ok(HashSet::new());
    }
    let index = CacheIndex::open(root)
        .map_err(|e| kiln_store::Error::from_io(format!("opening {}", dir.display()), e))?;
    let blobs = index
        .blobs()
        .map_err(|e| kiln_store::Error::from_io(format!("reading {}", dir.display()), e))?;
    Ok(blobs.into_iter().collect())
}

pub fn open_store(root: &Path) -> Result<ImageStore> {
    ImageStore::open(root).with_context(|| format!("opening the image store at {}", root.display()))
}
