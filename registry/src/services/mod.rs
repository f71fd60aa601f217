//! The registry's logic between the HTTP handlers (which parse requests and map errors)
//! and storage (which only stores): each service is tested without HTTP.

pub mod manifests;
