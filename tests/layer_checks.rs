//! The layer checks of `kiln load` on every way an image enters the store: load, copy from
//! an OCI archive or layout, and pull (after a skopeo push to kiln's registry). Each
//! malicious layer is refused naming the path, and the store is left exactly as it was.

mod common;

use std::{fs, io::Write};

use common::{Kiln, config_for, raw_tar, rich_rootfs, servers::Registry, skopeo};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// 1 GiB of zeros, gzipped (about 1 MB), streamed through the encoder.
fn gzip_bomb() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// A PAX extended header naming `path`, then a harmless-looking file it renames.
fn pax_renamed(path: &str) -> Vec<u8> {
    let body = format!(" path={path}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    let record = format!("{len}{body}");
    raw_tar(&[
        (
            "PaxHeaders/innocent",
            EntryType::XHeader,
            "",
            record.as_bytes(),
        ),
        ("innocent", EntryType::Regular, "", b"x"),
    ])
}

/// The files of an OCI layout holding one image: `layer` (gzip) under a config that lists
/// `diff_id`.
fn oci_files(layer: &[u8], diff_id: &str) -> Vec<(String, Vec<u8>)> {
    let mut config = config_for(&[]);
    config["rootfs"]["diff_ids"] = serde_json::json!([diff_id]);
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "1"}}],
    }))
    .unwrap();
    let blob = |b: &[u8]| (format!("blobs/sha256/{}", &sha(b)[7..]), b.to_vec());
    vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index),
        blob(&config),
        blob(&manifest),
        blob(layer),
    ]
}

/// The same image as an OCI archive and as an OCI layout directory.
fn write_image(kiln: &Kiln, name: &str, files: &[(String, Vec<u8>)]) -> (String, String) {
    let archive = kiln.file(&format!("{name}.tar"), &common::tar_of_files(files));
    let dir = kiln.scratch(&format!("{name}-layout"));
    for (path, bytes) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    (archive, dir.to_str().unwrap().to_string())
}

/// Every way in, for one image: each either succeeds (`expect` empty) or fails saying
/// each of `expect`, leaving the store as it was.
fn through_every_way_in(
    kiln: &Kiln,
    registry: &Registry,
    name: &str,
    files: &[(String, Vec<u8>)],
    expect: &[&str],
) {
    let (archive, dir) = write_image(kiln, name, files);
    let remote = format!("{}/{name}:1", registry.addr);
    skopeo(&format!(
        "copy --quiet oci-archive:{archive} docker://{remote} --dest-tls-verify=false"
    ));
    let ways: [Vec<String>; 4] = [
        vec!["load".into(), "-i".into(), archive.clone()],
        vec![
            "copy".into(),
            format!("oci-archive:{archive}"),
            "kiln:x:1".into(),
        ],
        vec!["copy".into(), format!("oci:{dir}"), "kiln:x:1".into()],
        vec!["pull".into(), remote.clone()],
    ];
    for way in ways {
        let args: Vec<&str> = way.iter().map(String::as_str).collect();
        if expect.is_empty() {
            kiln.ok(&args);
            continue;
        }
        let before = kiln.snapshot();
        let err = kiln.fails(&args);
        for e in expect {
            assert!(err.contains(e), "kiln {args:?}: expected {e:?} in:\n{err}");
        }
        assert_eq!(kiln.snapshot(), before, "kiln {args:?} changed the store");
    }
}

#[test]
fn malicious_layers_are_refused_on_every_way_in() {
    let kiln = Kiln::new();
    let seed = kiln.file("seed.tar", &rich_rootfs());
    kiln.ok(&["import", &seed, "seed:1"]);
    let registry_home = Kiln::new();
    let registry = Registry::start(&registry_home);

    // The checks refuse what they should, not everything: a good image goes in every way.
    let good = raw_tar(&[
        ("etc", EntryType::Directory, "", b""),
        ("etc/hostname", EntryType::Regular, "", b"ok\n"),
    ]);
    let good_gz = gzip(&good);
    through_every_way_in(
        &kiln,
        &registry,
        "good",
        &oci_files(&good_gz, &sha(&good)),
        &[],
    );

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "dotdot",
            raw_tar(&[("../x", EntryType::Regular, "", b"x")]),
            &["unsafe path", "\"../x\"", "contains '..'"],
        ),
        (
            "absolute",
            raw_tar(&[("/etc/evil", EntryType::Regular, "", b"x")]),
            &["unsafe path", "\"/etc/evil\"", "is absolute"],
        ),
        (
            "through-symlink",
            raw_tar(&[
                ("etc", EntryType::Symlink, "/outside", b""),
                ("etc/file", EntryType::Regular, "", b"x"),
            ]),
            &["unsafe path", "\"etc/file\"", "through the symlink"],
        ),
        (
            "hardlink",
            raw_tar(&[("passwd", EntryType::Link, "/etc/passwd", b"")]),
            &[
                "unsafe path",
                "\"/etc/passwd\"",
                "hard link target is absolute",
            ],
        ),
        (
            "pax",
            pax_renamed("../../pax-escape"),
            &["unsafe path", "../../pax-escape", "contains '..'"],
        ),
    ];
    for (name, tar, expect) in cases {
        let layer = gzip(&tar);
        let files = oci_files(&layer, &sha(&tar));
        through_every_way_in(&kiln, &registry, name, &files, expect);
    }

    // A layer the store already holds (the good one) under a config that lies about it.
    let liar = oci_files(&good_gz, &sha(b"not the layer"));
    through_every_way_in(
        &kiln,
        &registry,
        "liar",
        &liar,
        &["diffID", &sha(&good_gz)[7..]],
    );

    // A gzip bomb whose config names a wrong diffID: decompressed to the end (streaming),
    // found out, and refused.
    let bomb = gzip_bomb();
    let files = oci_files(&bomb, &sha(b"zeros"));
    through_every_way_in(
        &kiln,
        &registry,
        "bomb",
        &files,
        &["diffID", &sha(&bomb)[7..]],
    );
}
