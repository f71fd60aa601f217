//! Fuzz the layer check (pull, copy and load run it on every layer): arbitrary bytes as a
//! layer blob, and as a tar compressed with gzip and zstd. Run: `cargo +nightly fuzz run layer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_store::fuzzing::layer(data);
});
