//! The wire types of the Distribution API, one set for the registry server that writes
//! them and the client that reads them: the error envelope and its codes, the tag list
//! and the catalog (and its page limit), the manifest size limit, and how a manifest's
//! media type is told.
//! Server and client disagreeing on any of these is a bug one side cannot see; keeping
//! them here makes it one place to get right.

mod errors;
mod listing;
mod media_type;

pub use errors::{ErrorCode, ErrorEnvelope, ErrorInfo};
pub use listing::{CATALOG_PAGE_LIMIT, Catalog, TagList};
pub use media_type::{MediaTypeError, bare_media_type, manifest_media_type};

/// The largest manifest or index either side reads: the spec asks every registry to take
/// at least 4 MiB and lets it refuse more; it is the store's bound on documents too.
pub const MANIFEST_LIMIT: usize = kiln_store::DOCUMENT_LIMIT as usize;
