//! Fuzz the Dockerfile frontend: whatever the bytes, parsing, planning and expanding
//! return a value or an error, never a panic. Run: `cargo +nightly fuzz run parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_builder::fuzzing::exercise(data);
});
