//! Fuzz the image tarball readers (`load`: Docker and OCI archives with manifest.json,
//! index.json and repositories; `unpack_layout`: oci-archive). Run: `cargo +nightly fuzz run archive`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_store::fuzzing::archive(data);
});
