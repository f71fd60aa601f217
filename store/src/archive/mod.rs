//! Image tarballs: one tar that is both a Docker archive (`manifest.json`, `repositories`)
//! and an OCI image layout (`oci-layout`, `index.json`, `blobs/`), as Docker 25+ writes it.

mod load;
mod oci_archive;
mod plan;
mod save;

pub use load::{LoadReport, LoadedImage, load};
pub use oci_archive::{pack_layout, unpack_layout};
pub use save::{SaveOptions, SaveRequest, save};

use serde::{Deserialize, Serialize};

/// One item of a Docker archive's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestItem {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
}

pub(crate) const MANIFEST_JSON: &str = "manifest.json";
pub(crate) const INDEX_JSON: &str = "index.json";
pub(crate) const OCI_LAYOUT: &str = "oci-layout";
pub(crate) const REPOSITORIES: &str = "repositories";
