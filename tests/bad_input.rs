//! Bad input: every case fails with an error that says what and where, and leaves the
//! store exactly as it was (same blobs, same index, no staging files).

mod common;

use std::fs;

use common::{Kiln, StoreSnapshot, config_for, docker_archive, raw_tar, rich_rootfs, tar_of_files};
use tar::EntryType;

/// A store holding one image, so "unchanged" means something.
fn seeded() -> (Kiln, StoreSnapshot) {
    let kiln = Kiln::new();
    let input = kiln.scratch("seed.tar");
    fs::write(&input, rich_rootfs()).unwrap();
    kiln.ok(&["import", input.to_str().unwrap(), "seed:1"]);
    let snap = kiln.snapshot();
    (kiln, snap)
}

fn load_fails(kiln: &Kiln, archive: &[u8], expect: &[&str]) {
    let before = kiln.snapshot();
    let path = kiln.scratch("bad.tar");
    fs::write(&path, archive).unwrap();
    let err = kiln.fails(&["load", "-i", path.to_str().unwrap()]);
    for e in expect {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert_eq!(kiln.snapshot(), before, "a failed load changed the store");
}

fn import_fails(kiln: &Kiln, rootfs: &[u8], expect: &[&str]) {
    let before = kiln.snapshot();
    let path = kiln.scratch("bad-rootfs.tar");
    fs::write(&path, rootfs).unwrap();
    let err = kiln.fails(&["import", path.to_str().unwrap(), "bad:1"]);
    for e in expect {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert_eq!(kiln.snapshot(), before, "a failed import changed the store");
}

/// A good saved archive of `seed:1`, and its layer digest.
fn saved(kiln: &Kiln) -> (Vec<u8>, String) {
    let path = kiln.scratch("good.tar");
    kiln.ok(&["save", "-o", path.to_str().unwrap(), "seed:1"]);
    let v: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "seed:1"])).unwrap();
    let layer = v[0]["Manifest"]["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    (fs::read(path).unwrap(), layer)
}

#[test]
fn truncated_archives() {
    let (kiln, _) = seeded();
    let (good, _) = saved(&kiln);
    // Cut inside the layer blob (the last and biggest entry), and just before the end marker.
    for cut in [good.len() / 2, good.len() - 1024, good.len() - 1030] {
        load_fails(&kiln, &good[..cut], &["truncated"]);
    }
    let rootfs = rich_rootfs();
    import_fails(
        &kiln,
        &rootfs[..rootfs.len() / 2],
        &["truncated", "bad-rootfs.tar"],
    );
    // A gzip stream cut short.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &rootfs).unwrap();
    let gz = gz.finish().unwrap();
    import_fails(&kiln, &gz[..gz.len() - 100], &["bad-rootfs.tar"]);
}

#[test]
fn blob_whose_bytes_do_not_match_its_digest() {
    let (kiln, _) = seeded();
    let (good, layer) = saved(&kiln);
    // Rewrite the archive with one byte of the layer blob flipped.
    let mut files = common::files_of(&good);
    for (name, bytes) in &mut files {
        if name.ends_with(&layer) {
            let last = bytes.len() - 5;
            bytes[last] ^= 0xff;
        }
    }
    load_fails(&kiln, &tar_of_files(&files), &["digest mismatch", &layer]);
}

#[test]
fn diff_id_mismatch() {
    let (kiln, _) = seeded();
    let layer = rich_rootfs();
    let mut config = config_for(&[&layer]);
    config["rootfs"]["diff_ids"][0] = serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
    let archive = docker_archive(&config, &[("0123/layer.tar", layer)], &["liar:1"]);
    load_fails(
        &kiln,
        &archive,
        &["digest mismatch", "diffID", "0123/layer.tar"],
    );
}

#[test]
fn escaping_paths_in_rootfs_and_in_layers() {
    let (kiln, _) = seeded();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_tar(&[("../evil", EntryType::Regular, "", b"x")]),
            "contains '..'",
        ),
        (
            raw_tar(&[("a/../../evil", EntryType::Regular, "", b"x")]),
            "contains '..'",
        ),
        (
            raw_tar(&[("/etc/passwd", EntryType::Regular, "", b"x")]),
            "is absolute",
        ),
        (
            raw_tar(&[("x", EntryType::Link, "/etc/shadow", b"")]),
            "is absolute",
        ),
        (
            raw_tar(&[
                ("evil", EntryType::Symlink, "/etc", b""),
                (
                    "evil/passwd",
                    EntryType::Regular,
                    "",
                    b"root::0:0::/:/bin/sh\n",
                ),
            ]),
            "written through the symlink",
        ),
        (
            raw_tar(&[("up", EntryType::Symlink, "../../../etc", b"")]),
            "points outside",
        ),
    ];
    for (tar, reason) in cases {
        import_fails(&kiln, &tar, &["unsafe path", reason]);
        // The same layer inside an archive, with a config that matches it exactly.
        let config = config_for(&[&tar]);
        let archive = docker_archive(&config, &[("l/layer.tar", tar.clone())], &["evil:1"]);
        load_fails(&kiln, &archive, &["unsafe path", reason, "l/layer.tar"]);
    }
}

#[test]
fn manifest_naming_a_missing_file() {
    let (kiln, _) = seeded();
    let layer = rich_rootfs();
    let config = config_for(&[&layer]);
    let mut archive_files = Vec::new();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", common_hex(&config_bytes));
    archive_files.push((config_name.clone(), config_bytes));
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["m:1"], "Layers": ["gone/layer.tar"]}]);
    archive_files.push((
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    load_fails(
        &kiln,
        &tar_of_files(&archive_files),
        &["gone/layer.tar", "does not contain"],
    );

    // And an OCI index naming a manifest that is not there.
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "cd".repeat(32)), "size": 10}]});
    let files = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_string(),
            serde_json::to_vec(&index).unwrap(),
        ),
    ];
    load_fails(
        &kiln,
        &tar_of_files(&files),
        &["does not contain", &"cd".repeat(32)],
    );
}

fn common_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn unknown_compression_and_garbage() {
    let (kiln, _) = seeded();
    let bzip2 = b"BZh91AY&SY\x00\x00\x00\x00 not really bzip2 but it starts like it".to_vec();
    load_fails(&kiln, &bzip2, &["unknown compression", "bzip2"]);
    import_fails(&kiln, &bzip2, &["unknown compression", "bzip2"]);
    let garbage = b"this is plainly not an archive of any kind".repeat(20);
    load_fails(&kiln, &garbage, &["unknown compression"]);
    load_fails(&kiln, b"", &["empty"]);
    // A tar that is neither a Docker archive nor an OCI layout.
    let other = tar_of_files(&[("hello.txt".to_string(), b"hi".to_vec())]);
    load_fails(&kiln, &other, &["neither manifest.json", "nor index.json"]);
    // Invalid JSON in manifest.json.
    let bad_json = tar_of_files(&[("manifest.json".to_string(), b"[{not json".to_vec())]);
    load_fails(&kiln, &bad_json, &["invalid JSON", "manifest.json"]);
}

#[test]
fn layer_declared_with_the_wrong_compression() {
    let (kiln, _) = seeded();
    let (good, layer) = saved(&kiln);
    // Swap the gzip layer for the same tar compressed with zstd, keeping the manifest's
    // gzip media type: digests are made to match, so only the media type check can catch it.
    let files = common::files_of(&good);
    let (_, gz) = files
        .iter()
        .find(|(n, _)| n.ends_with(&layer))
        .unwrap()
        .clone();
    let zst = zstd::encode_all(&common::decompress(&gz)[..], 3).unwrap();
    let zst_hex = common_hex(&zst);
    let mut rewritten = Vec::new();
    for (name, bytes) in files {
        if name.ends_with(&layer) {
            rewritten.push((format!("blobs/sha256/{zst_hex}"), zst.clone()));
        } else if name.starts_with("blobs/")
            && bytes.starts_with(b"{")
            && String::from_utf8_lossy(&bytes).contains(&layer)
        {
            // The manifest: point it at the zstd blob, keep the gzip media type.
            let text = String::from_utf8(bytes).unwrap().replace(&layer, &zst_hex);
            let text = text.replace(
                &format!("\"size\":{}", gz.len()),
                &format!("\"size\":{}", zst.len()),
            );
            let hex = common_hex(text.as_bytes());
            rewritten.push((format!("blobs/sha256/{hex}"), text.into_bytes()));
            rewritten.push(("index.json".into(), Vec::new())); // placeholder, fixed below
            let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{hex}"), "size": rewritten.iter().find(|(n, _)| n.ends_with(&hex)).unwrap().1.len(),
                "annotations": {"io.containerd.image.name": "docker.io/library/wrong:1"}}]});
            rewritten.last_mut().unwrap().1 = serde_json::to_vec(&index).unwrap();
        } else if name != "index.json" && name != "manifest.json" {
            rewritten.push((name, bytes));
        }
    }
    load_fails(
        &kiln,
        &tar_of_files(&rewritten),
        &[
            "declared as application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd",
        ],
    );
}
