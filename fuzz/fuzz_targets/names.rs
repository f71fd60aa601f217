//! Fuzz the parsers of names a request carries: references, digests, `/v2/` paths,
//! `Content-Range` and percent-encoded query values. Run: `cargo +nightly fuzz run names`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_registry::fuzzing::names(data);
});
