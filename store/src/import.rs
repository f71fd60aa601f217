//! `import_rootfs`: a rootfs tarball (plain, gzip or zstd) becomes a one-layer image, like
//! `docker import`. The tar bytes are kept exactly as given, so the layer's diffID is the
//! digest of the uncompressed input.

use std::io::{self, Read, Write};

use crate::{
    Compression, Descriptor, Error, History, ImageConfig, ImageStore, LayerSink, Manifest,
    Platform, Reference, Result, RootFs, RunConfig, check_tar,
    media_type::{OCI_CONFIG, OCI_MANIFEST},
    open_tar_stream, spec,
};

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// How the layer is stored (gzip unless asked otherwise: every registry and docker read it).
    pub compression: Compression,
    /// RFC 3339 creation time recorded in the config and history.
    pub created: String,
    pub config: RunConfig,
    /// e.g. "Imported from rootfs.tar", shown by `kiln history`.
    pub comment: String,
    pub platform: Platform,
}

#[derive(Debug)]
pub struct Imported {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
}

/// Import `input` (named `what` in errors) as an image, tagged `reference` when given.
/// Nothing becomes visible unless the whole tarball was read and checked.
pub fn import_rootfs<R: Read + Send>(
    store: &ImageStore,
    input: R,
    what: &str,
    reference: Option<&Reference>,
    options: &ImportOptions,
) -> Result<Imported> {
    let _gc = store.gc_lock(false)?;
    let (_, tar) = open_tar_stream(input, what)?;
    let mut sink = LayerSink::new(store.blobs(), options.compression)?;
    check_tar(Tee::new(tar, &mut sink), what)?;
    let layer = sink.finish()?;

    let config = ImageConfig {
        created: Some(options.created.clone()),
        architecture: options.platform.architecture.clone(),
        os: options.platform.os.clone(),
        variant: options.platform.variant.clone(),
        config: Some(options.config.clone()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: vec![History {
            created: Some(options.created.clone()),
            comment: Some(options.comment.clone()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let config_bytes = spec::to_json(&config);
    let layer_desc = Descriptor::new(
        layer.media_type(),
        layer.blob.digest.clone(),
        layer.blob.size,
    );
    let config_desc = Descriptor::new(
        OCI_CONFIG,
        crate::Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: vec![layer_desc.clone()],
        subject: None,
        annotations: None,
    };
    let manifest_bytes = spec::to_json(&manifest);

    layer.blob.commit(store.blobs(), None)?;
    store.blobs().put_bytes(&config_bytes)?;
    let digest = store.blobs().put_bytes(&manifest_bytes)?;
    let manifest_desc = Descriptor::new(OCI_MANIFEST, digest, manifest_bytes.len() as u64);
    store.set(reference, &manifest_desc)?;
    Ok(Imported {
        manifest: manifest_desc,
        config: config_desc,
        layer: layer_desc,
    })
}

/// A reader that copies everything it reads into a writer.
pub struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Tee<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Tee { reader, writer }
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        // The error travels back through the tar reader: mark it as a write, or it would
        // read as a broken input (`reading rootfs.tar: No space left on device`).
        self.writer
            .write_all(&buf[..n])
            .map_err(|e| Error::from_io("writing the layer into the store", e).into_io())?;
        Ok(n)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        e.into_io()
    }
}
