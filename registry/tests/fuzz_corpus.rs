//! Replays the fuzzers' kept corpora (`fuzz/corpus/manifest/`, `fuzz/corpus/names/`) on
//! stable through the functions the fuzz targets call: every input that ever found new
//! code still keeps the invariants those functions assert. Also (ignored) the writer of
//! the first seeds.

use std::fs;

use kiln_store::fuzzing::{corpus_dir, replay_corpus};

use kiln_registry::fuzzing::{self, CONFIG, FOREIGN, LAYER, child_manifest};
use kiln_store::{
    Digest,
    media_type::{DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST},
};

#[test]
fn the_manifest_corpus_keeps_its_invariants() {
    let count = replay_corpus("manifest", fuzzing::manifest);
    assert!(count >= 20, "the manifest corpus holds {count} inputs");
}

#[test]
fn the_names_corpus_keeps_its_invariants() {
    let count = replay_corpus("names", fuzzing::names);
    assert!(count >= 20, "the names corpus holds {count} inputs");
}

// ---------------------------------------------------------------------------------------
// Seeds: `cargo test -p kiln-registry --test fuzz_corpus -- --ignored write_seeds` writes
// them into the corpora; `cargo fuzz cmin` keeps those that add coverage.

fn write_all(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

/// The selector byte `fuzzing::manifest` reads: content type (index into its list) and
/// reference (0 tag, 1 the body's digest, 2 another digest).
fn selected(content_type: u8, reference: u8, body: &str) -> Vec<u8> {
    let mut out = vec![content_type + 8 * reference];
    out.extend_from_slice(body.as_bytes());
    out
}

fn descriptor(media_type: &str, blob: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
        Digest::of(blob),
        blob.len()
    )
}

#[test]
#[ignore = "writes seed inputs into fuzz/corpus"]
fn write_seeds() {
    let config = descriptor(OCI_CONFIG, CONFIG);
    let layer = descriptor(OCI_LAYER, LAYER);
    let child = child_manifest();
    let child_d = descriptor(OCI_MANIFEST, &child);
    let image = |media_type: &str, layers: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{config},"layers":[{layers}]}}"#
        )
    };
    let foreign_layer = format!(
        r#"{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":9,"urls":["https://example.com/l"]}}"#,
        Digest::of(b"elsewhere")
    );
    let wrong_size = layer.replace(&format!("\"size\":{}", LAYER.len()), "\"size\":1");
    let manifests = [
        ("oci", selected(0, 0, &image(OCI_MANIFEST, &layer))),
        (
            "oci-by-digest",
            selected(1, 1, &image(OCI_MANIFEST, &layer)),
        ),
        ("docker", selected(3, 0, &image(DOCKER_MANIFEST, &layer))),
        (
            "no-media-type",
            selected(
                1,
                0,
                &format!(r#"{{"schemaVersion":2,"config":{config},"layers":[]}}"#),
            ),
        ),
        ("wrong-digest", selected(0, 2, &image(OCI_MANIFEST, &layer))),
        (
            "foreign-layer",
            selected(0, 0, &image(OCI_MANIFEST, &foreign_layer)),
        ),
        (
            "unknown-blob",
            selected(0, 0, &image(OCI_MANIFEST, &descriptor(OCI_LAYER, FOREIGN))),
        ),
        (
            "wrong-size",
            selected(0, 0, &image(OCI_MANIFEST, &wrong_size)),
        ),
        (
            "index",
            selected(
                2,
                0,
                &format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
                    child_d.replace('}', r#","platform":{"architecture":"amd64","os":"linux"}}"#)
                ),
            ),
        ),
        (
            "referrer",
            selected(
                0,
                1,
                &format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-sig","config":{config},"layers":[],"subject":{child_d},"annotations":{{"a":"b"}}}}"#
                ),
            ),
        ),
        (
            "index-referrer",
            selected(
                0,
                0,
                &format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{child_d}}}"#
                ),
            ),
        ),
        (
            "schema1",
            selected(7, 0, r#"{"schemaVersion":1,"name":"x","tag":"y"}"#),
        ),
        ("mismatch", selected(2, 0, &image(OCI_MANIFEST, &layer))),
        ("not-json", selected(0, 0, "{\"schemaVersion\":2,")),
    ];
    write_all("manifest", &manifests);

    let digest = Digest::of(b"x").to_string();
    let names = [
        "busybox",
        "docker.io/library/busybox:latest",
        "index.docker.io/team/app:v1.2",
        "localhost:5000/a/b/c:t",
        "[::1]:5000/x/y:z",
        "Registry.Example/app",
        "ab__c/e--f.g",
        &format!("127.0.0.1:5000/app:t@{digest}"),
        &digest,
        &digest["sha256:".len()..],
        "/v2/",
        "/v2/_catalog",
        "/v2/a/b/manifests/latest",
        "/v2/a/blobs/uploads/",
        "/v2/a/blobs/uploads/5f3e",
        &format!("/v2/x/blobs/{digest}"),
        &format!("/v2/x/referrers/{digest}"),
        "/v2/a/tags/list",
        "0-1023",
        "bytes 5-10",
        "bytes=0-",
        "%2Fa%3Ab%zz%",
    ];
    let seeds: Vec<(String, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), n.as_bytes().to_vec()))
        .collect();
    let seeds: Vec<(&str, Vec<u8>)> = seeds.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_all("names", &seeds);
}
