//! A solved image into the store: its config and manifest (OCI, or Docker schema 2 for
//! `--format docker`), tagged under every name given. The image ID is the config digest.

use kiln_store::{
    Compression, Descriptor, Digest, ImageStore, Manifest, Reference,
    media_type::{
        DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST,
    },
    spec,
};

use super::ImageState;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Oci,
    Docker,
}

/// What `store_image` stored.
#[derive(Clone, Debug)]
pub struct Stored {
    pub manifest: Descriptor,
    /// The image ID (docker's): the config's digest.
    pub id: Digest,
}

/// Store `state` as an image and point every name at it. The layers are in the store
/// already (each step stored its own); the config and manifest go in, then the names,
/// so a failure leaves no name pointing at a half image.
pub fn store_image(
    store: &ImageStore,
    state: &ImageState,
    format: Format,
    names: &[Reference],
) -> Result<Stored, String> {
    let (manifest_type, config_type) = match format {
        Format::Oci => (OCI_MANIFEST, OCI_CONFIG),
        Format::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
    };
    let mut layers = Vec::with_capacity(state.layers.len());
    for layer in &state.layers {
        let mut layer = layer.clone();
        if format == Format::Docker {
            layer.media_type = match Compression::of_layer_media_type(&layer.media_type) {
                Some(Compression::Gzip) => DOCKER_LAYER_GZIP.into(),
                Some(Compression::None) => DOCKER_LAYER.into(),
                _ => {
                    return Err(format!(
                        "layer {} is {}: a Docker image holds plain or gzip layers only \
                         (use --format oci, or --compress gzip)",
                        layer.digest, layer.media_type
                    ));
                }
            };
        }
        layers.push(layer);
    }
    let config_bytes = spec::to_json(&state.config);
    let config = Descriptor::new(
        config_type,
        Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_type.into()),
        artifact_type: None,
        config: config.clone(),
        layers,
        subject: None,
        annotations: None,
    };
    let manifest_bytes = spec::to_json(&manifest);
    let fail = |e: kiln_store::Error| format!("storing the image: {e}");
    store.blobs().put_bytes(&config_bytes).map_err(fail)?;
    let digest = store.blobs().put_bytes(&manifest_bytes).map_err(fail)?;
    let descriptor = Descriptor::new(manifest_type, digest, manifest_bytes.len() as u64);
    if names.is_empty() {
        store.set(None, &descriptor).map_err(fail)?;
    }
    for name in names {
        store.set(Some(name), &descriptor).map_err(fail)?;
    }
    Ok(Stored {
        manifest: descriptor,
        id: config.digest,
    })
}
