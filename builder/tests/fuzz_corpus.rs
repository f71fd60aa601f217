//! Replays the fuzzer's kept corpus (`fuzz/corpus/parse/`) through the whole frontend on
//! stable: every input that ever found new code still parses, plans and expands without
//! a panic.

use std::{fs, path::PathBuf};

#[test]
fn the_fuzz_corpus_never_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse");
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        kiln_builder::fuzzing::exercise(&data);
        count += 1;
    }
    assert!(count >= 60, "the fuzz corpus holds {count} inputs");
}
