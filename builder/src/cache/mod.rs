//! The layer cache: every step has a [`CacheKey`] (its parent's key, the step after
//! expansion, the build args it sees, the content of what it reads), and the
//! [`CacheIndex`] under `$KILN_ROOT/cache` maps keys to what the step produced, so an
//! unchanged step is a lookup, never a sandbox.

mod index;
mod key;

pub use index::{CacheIndex, CacheRecord, LayerRecord};
pub use key::CacheKey;
