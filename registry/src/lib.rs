//! OCI Distribution for kiln: the registry server and its HTTP client share this crate
//! (issues 3 and 4 fill it in). It depends on the store and nothing above it.

pub use kiln_store as store;
pub mod client;
pub mod copy;
pub mod server;
pub mod storage;
