//! kiln's content-addressed store: digests, blobs, the local OCI image layout, layer
//! archives and image tarballs. No network and no processes live here.

pub mod archive;
mod blob;
mod compression;
mod digest;
mod digest_io;
pub mod durable;
mod error;
mod flatten;
pub mod fuzzing;
mod images;
mod import;
mod layer;
mod layer_check;
mod layout;
pub mod media_type;
mod reference;
pub mod spec;
mod tar_check;
mod unpack;

pub use blob::{BlobStore, BlobWriter, ChunkSink, ChunkWriter, IO_BUFFER, StagedBlob};
pub use compression::{Compression, Encoder, decoder, looks_like_tar, open_tar_stream, sniff};
pub use digest::{Algorithm, Digest, Hasher};
pub use digest_io::{CountingReader, CountingSink, DigestReader, DigestWriter};
pub use durable::{DurableFile, Readers, write_atomically};
pub use error::{Error, Result};
pub use flatten::export_flat;
pub use images::{CONFIG_LIMIT, DOCUMENT_LIMIT, GcReport, Image, ImageEntry, ImageStore};
pub use import::{ImportOptions, Imported, Tee, import_rootfs};
pub use layer::{
    LayerOptions, LayerSink, LayerWriter, OPAQUE_WHITEOUT, StagedLayer, WHITEOUT_PREFIX,
};
pub use layer_check::{LayerCheck, LayerFacts, check_layer, check_layer_blob, check_layer_count};
pub use layout::{ImageLayout, LayoutLock};
pub use reference::{
    DEFAULT_TAG, Reference, validate_path as validate_repository_name, validate_tag,
};
pub use spec::{
    Descriptor, Healthcheck, History, ImageConfig, Index, Manifest, Platform, RootFs, RunConfig,
};
pub use tar_check::{PathCheck, TarSummary, check_tar, normalise_path};
pub use unpack::{OverlayXattrs, UnpackMode, UnpackOptions, Unpacked, unpack_layer, unpack_tar};
