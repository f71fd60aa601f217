//! OCI Distribution for kiln: the registry server (handlers, services, storage) and its
//! HTTP client share this crate, with `copy` between transports. It depends on the store
//! and nothing above it.

pub use kiln_store as store;
pub mod client;
pub mod copy;
pub mod fuzzing;
pub mod server;
pub mod services;
pub mod storage;
