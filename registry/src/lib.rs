//! OCI Distribution for kiln: the registry server (`server` handlers over `services`
//! over `storage`, and the collector), the HTTP `client`, their shared `wire` types, and
//! `copy` between transports (registries, OCI layouts and archives, the store). It
//! depends on the store and nothing above it.

pub use kiln_store as store;
pub mod client;
pub mod copy;
pub mod fuzzing;
pub mod server;
pub mod services;
pub mod storage;
pub mod wire;
