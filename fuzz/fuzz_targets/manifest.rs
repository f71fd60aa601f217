//! Fuzz manifest PUTs through the registry's manifest service (media type, spec parsing,
//! the blobs a manifest names). Run: `cargo +nightly fuzz run manifest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_registry::fuzzing::manifest(data);
});
