//! Replays the fuzzers' kept corpora (`fuzz/corpus/layer/`, `fuzz/corpus/archive/`) on
//! stable through the functions the fuzz targets call: every input that ever found new
//! code still keeps the invariants those functions assert. Also the regression inputs of
//! crashes the fuzzers found, and (ignored) the writer of the first seeds.

use std::{fs, io::Write};

use kiln_store::fuzzing::{corpus_dir, replay_corpus};

use kiln_store::{
    Digest,
    fuzzing::{self, ArchiveRecipe},
    media_type::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST},
};

#[test]
fn the_layer_corpus_keeps_its_invariants() {
    let count = replay_corpus("layer", fuzzing::layer);
    assert!(count >= 20, "the layer corpus holds {count} inputs");
}

#[test]
fn the_archive_corpus_keeps_its_invariants() {
    let count = replay_corpus("archive", fuzzing::archive);
    assert!(count >= 20, "the archive corpus holds {count} inputs");
}

// ---------------------------------------------------------------------------------------
// Seeds: `cargo test -p kiln-store --test fuzz_corpus -- --ignored write_seeds` writes them
// into the corpora; `cargo fuzz cmin` keeps those that add coverage.

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        let (name, kind, data, link): (&str, _, &[u8], _) = match *e {
            E::File(p, d) => (p, tar::EntryType::Regular, d, None),
            E::Dir(p) => (p, tar::EntryType::Directory, b"", None),
            E::Sym(p, t) => (p, tar::EntryType::Symlink, b"", Some(t)),
            E::Hard(p, t) => (p, tar::EntryType::Link, b"", Some(t)),
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn rootfs() -> Vec<u8> {
    tar_of(&[
        E::Dir("./"),
        E::Dir("./bin/"),
        E::File("./bin/busybox", b"\x7fELF"),
        E::Sym("./bin/sh", "/bin/busybox"),
        E::Sym("./usr/lib/x", "../../lib/x"),
        E::Hard("./bin/ls", "./bin/busybox"),
        E::File("./etc/.wh.passwd", b""),
        E::File("./var/.wh..wh..opq", b""),
    ])
}

/// A tar with a PAX header (long path) and a GNU long name, as real layers have.
fn extended_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("a/{}/file", "d".repeat(120));
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    b.append_pax_extensions([("path", &b"pax/named"[..]), ("mtime", &b"1.5"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "x", &b"y"[..]).unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn write_all(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

#[test]
#[ignore = "writes seed inputs into fuzz/corpus"]
fn write_seeds() {
    let root = rootfs();
    let ext = extended_tar();
    let unsafe_tars = [
        tar_of(&[E::File("../x", b"x")]),
        tar_of(&[E::File("/etc/passwd", b"x")]),
        tar_of(&[E::Sym("etc", "/outside"), E::File("etc/file", b"x")]),
        tar_of(&[E::Hard("x", "/etc/passwd")]),
        tar_of(&[E::Sym("x", "../../up")]),
    ];
    let mut layers = vec![
        ("rootfs", root.clone()),
        ("extended", ext.clone()),
        ("rootfs-gzip", gzip(&root)),
        ("rootfs-zstd", zstd::encode_all(&root[..], 1).unwrap()),
        ("truncated", root[..root.len() - 1024].to_vec()),
        ("empty", vec![0; 1024]),
        ("gzip-twice", gzip(&gzip(&root))),
    ];
    for (i, t) in unsafe_tars.iter().enumerate() {
        layers.push((
            ["dotdot", "absolute", "via-symlink", "hardlink", "escape"][i],
            t.clone(),
        ));
    }
    write_all("layer", &layers);

    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@d0"]}}"#;
    let manifest = |layer_type: &str, n: u8| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"@d{c}","size":@s{c}}},"layers":[{{"mediaType":"{layer_type}","digest":"@d{n}","size":@s{n}}}]}}"#,
            c = n + 1
        )
    };
    // c0 plain layer, c1 config, c2 manifest.
    let m_plain = manifest(OCI_LAYER, 0);
    let oci = ArchiveRecipe::encode(
        b'P',
        &[
            (b'b', root.as_slice()),
            (b'b', config),
            (b'b', m_plain.as_bytes()),
            (b'o', layout),
            (
                b'i',
                format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"@d2","size":@s2,"annotations":{{"org.opencontainers.image.ref.name":"example.com/a:1"}}}}]}}"#
                )
                .as_bytes(),
            ),
        ],
    );
    // c0 plain layer (for its diffID), c1 the same gzipped, c2 config, c3 manifest,
    // c4 a nested index; Docker 25's manifest.json and repositories beside.
    let m_gzip = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"@d2","size":@s2}},"layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"@d1","size":@s1}}]}}"#
    );
    let nested = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"@d3","size":@s3,"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":5,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        Digest::of(b"absent").hex()
    );
    let docker25 = ArchiveRecipe::encode(
        b'P',
        &[
            (b'b', root.as_slice()),
            (b'z', root.as_slice()),
            (b'b', config),
            (b'b', m_gzip.as_bytes()),
            (b'b', nested.as_bytes()),
            (b'o', layout),
            (
                b'i',
                format!(
                    r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_INDEX}","digest":"@d4","size":@s4,"annotations":{{"io.containerd.image.name":"example.com/b:2","org.opencontainers.image.ref.name":"2"}}}}]}}"#
                )
                .as_bytes(),
            ),
            (
                b'm',
                br#"[{"Config":"blobs/sha256/@h2","RepoTags":["example.com/b:2"],"Layers":["blobs/sha256/@h1"]}]"#,
            ),
            (b'r', br#"{"example.com/b":{"2":"@h3"}}"#),
        ],
    );
    // Old docker save: c0 `0/layer.tar`, c1 `<hex>.json`; a second image's layer is a
    // symlink to the first one's.
    let old = ArchiveRecipe::encode(
        b'P',
        &[
            (b'l', root.as_slice()),
            (b'j', config),
            (b'd', b"1/"),
            (b's', b"1/layer.tar\0../0/layer.tar"),
            (
                b'm',
                br#"[{"Config":"@h1.json","RepoTags":["busybox:latest"],"Layers":["0/layer.tar"]},{"Config":"@h1.json","RepoTags":["x.io/y"],"Layers":["1/layer.tar"]}]"#,
            ),
            (b'r', br#"{"busybox":{"latest":"@h1"}}"#),
        ],
    );
    let evil = ArchiveRecipe::encode(
        b'P',
        &[
            (b'b', unsafe_tars[2].as_slice()),
            (b'b', config),
            (b'b', manifest(OCI_LAYER, 0).as_bytes()),
            (b'o', layout),
            (
                b'i',
                br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@d2","size":@s2}]}"#,
            ),
        ],
    );
    let mut gzipped = oci.clone();
    gzipped[0] = b'G';
    let mut raw = vec![b'R'];
    raw.extend(ArchiveRecipe::build(&docker25[1..], false));
    write_all(
        "archive",
        &[
            ("oci", oci),
            ("docker25", docker25),
            ("docker-old", old),
            ("unsafe-layer", evil),
            ("gzip", gzipped),
            ("raw", raw),
        ],
    );
}
