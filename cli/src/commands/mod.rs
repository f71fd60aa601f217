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

use std::path::Path;

use anyhow::{Context, Result};
use kiln_store::ImageStore;

pub fn open_store(root: &Path) -> Result<ImageStore> {
    ImageStore::open(root).with_context(|| format!("opening the image store at {}", root.display()))
}
