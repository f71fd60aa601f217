//! Round trips through kiln's own tarballs: import -> save -> rmi -> load -> export gives
//! back the input tree, for every compression on the way in and out.

mod common;

use std::{fs, io::Write};

use common::{Kiln, busybox_rootfs, rich_rootfs, tree_of};

fn round_trip(kiln: &Kiln, rootfs: &[u8], name: &str, save_flags: &[&str]) {
    let input = kiln.file("input.tar", rootfs);
    kiln.ok(&["import", "--change", "CMD [\"sh\"]", &input, name]);
    let id = kiln.image_id(name);
    let digest = kiln.manifest_digest(name);

    let saved = kiln.scratch("saved.tar");
    let mut args = vec!["save", "-o", saved.to_str().unwrap()];
    args.extend_from_slice(save_flags);
    args.push(name);
    kiln.ok(&args);
    kiln.ok(&["rmi", name]);
    assert!(
        !kiln
            .ok(&["images"])
            .contains(name.split(':').next().unwrap())
    );
    assert!(kiln.snapshot().blobs.is_empty(), "rmi left blobs behind");

    let loaded = kiln.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: "), "{loaded}");
    assert_eq!(kiln.image_id(name), id, "the image ID survives the trip");
    assert_eq!(
        kiln.manifest_digest(name),
        digest,
        "the manifest digest survives the trip"
    );

    let exported = kiln.scratch("exported.tar");
    kiln.ok(&["export", name, "-o", exported.to_str().unwrap()]);
    let want = tree_of(rootfs);
    let got = tree_of(&fs::read(&exported).unwrap());
    assert_eq!(got, want, "the exported tree differs from the imported one");
}

#[test]
fn busybox_rootfs_round_trips() {
    let kiln = Kiln::new();
    let rootfs = fs::read(busybox_rootfs(kiln.dir.path())).unwrap();
    round_trip(&kiln, &rootfs, "busybox:latest", &[]);
}

#[test]
fn rich_rootfs_round_trips_with_links_xattrs_and_devices() {
    let kiln = Kiln::new();
    round_trip(&kiln, &rich_rootfs(), "rich:1", &[]);
}

#[test]
fn compressed_archives_round_trip() {
    for flag in ["gzip", "zstd"] {
        let kiln = Kiln::new();
        round_trip(
            &kiln,
            &rich_rootfs(),
            "example.com/team/rich:2",
            &["--compress", flag],
        );
        let saved = fs::read(kiln.scratch("saved.tar")).unwrap();
        let magic: &[u8] = if flag == "gzip" {
            &[0x1f, 0x8b]
        } else {
            &[0x28, 0xb5, 0x2f, 0xfd]
        };
        assert!(
            saved.starts_with(magic),
            "--compress {flag} did not compress"
        );
    }
}

#[test]
fn import_reads_gzip_zstd_and_stdin() {
    let kiln = Kiln::new();
    let rootfs = rich_rootfs();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&rootfs).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&rootfs[..], 3).unwrap();
    for (name, bytes) in [("gz:1", &gz), ("zst:1", &zst), ("plain:1", &rootfs)] {
        kiln.ok_stdin(&["import", "-", name], bytes);
    }
    // Same uncompressed tar, same diffID, whatever the input compression.
    let diff_ids: Vec<String> = ["gz:1", "zst:1", "plain:1"]
        .iter()
        .map(|n| {
            let v: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", n])).unwrap();
            v[0]["Config"]["rootfs"]["diff_ids"][0]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "{diff_ids:?}");
}

#[test]
fn import_applies_changes_and_history() {
    let kiln = Kiln::new();
    let input = kiln.file("in.tar", &rich_rootfs());
    kiln.ok(&[
        "import",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo hi\"]",
        "-c",
        "ENTRYPOINT [\"/bin/tini\"]",
        "-c",
        "ENV PATH=/usr/bin:/bin LANG=C.UTF-8",
        "-c",
        "EXPOSE 8080/tcp 53/udp",
        "-c",
        "LABEL org.opencontainers.image.title=rich",
        "-c",
        "USER 1000:1000",
        "-c",
        "WORKDIR /srv",
        "-c",
        "VOLUME /data",
        "-c",
        "HEALTHCHECK --interval=30s CMD true",
        "-c",
        "ONBUILD RUN echo hi",
        "-m",
        "from a test",
        &input,
        "rich:changed",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&kiln.ok(&["inspect", "rich:changed"])).unwrap();
    let c = &v[0]["Config"]["config"];
    assert_eq!(c["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/tini"]));
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/bin:/bin", "LANG=C.UTF-8"])
    );
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "rich");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Interval": 30_000_000_000i64, "Test": ["CMD-SHELL", "true"]})
    );
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo hi"]));
    let history = kiln.ok(&["history", "rich:changed"]);
    assert!(history.contains("from a test"), "{history}");

    let bad = kiln.fails(&["import", "-c", "RUN echo", &input, "x:1"]);
    assert!(bad.contains("RUN cannot be changed on import"), "{bad}");
    // docker import refuses STOPSIGNAL too (it is not among moby's commit commands).
    let bad = kiln.fails(&["import", "-c", "STOPSIGNAL SIGQUIT", &input, "x:1"]);
    assert!(
        bad.contains("--change \"STOPSIGNAL SIGQUIT\": STOPSIGNAL cannot be changed"),
        "{bad}"
    );
}

#[test]
fn images_tag_inspect_history_prune() {
    let kiln = Kiln::new();
    let input = kiln.file("in.tar", &rich_rootfs());
    let id = kiln.ok(&["import", &input, "app:1"]).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    kiln.ok(&["tag", "app:1", "registry.example:5000/team/app:1.2"]);
    kiln.ok(&["tag", &id[7..19], "app:byid"]);

    let table = kiln.ok(&["images"]);
    let header = table.lines().next().unwrap();
    for column in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("registry.example:5000/team/app"), "{table}");
    assert!(table.contains(&id[7..19]), "{table}");
    let json: Vec<serde_json::Value> = kiln
        .ok(&["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3);
    assert!(json.iter().all(|r| r["ID"] == id.as_str()));
    assert_eq!(
        kiln.ok(&["images", "app"]).lines().count(),
        3,
        "filter by repository"
    );
    assert_eq!(kiln.ok(&["images", "-q"]).trim(), &id[7..19]);

    // rmi by ID refuses an image with several names, unless forced.
    let err = kiln.fails(&["rmi", &id[7..19]]);
    assert!(err.contains("has 3 names"), "{err}");
    let out = kiln.ok(&["rmi", "app:byid"]);
    assert!(
        out.contains("Untagged: app:byid") && !out.contains("Deleted"),
        "{out}"
    );

    // An untagged image goes with prune; --dry-run only lists.
    kiln.ok(&["import", "-c", "CMD [\"other\"]", &input]);
    let before = kiln.snapshot();
    let dry = kiln.ok(&["prune", "--dry-run"]);
    assert!(dry.contains("Would remove untagged image"), "{dry}");
    assert_eq!(kiln.snapshot(), before, "--dry-run changed the store");
    let real = kiln.ok(&["prune"]);
    assert!(real.contains("Removed untagged image"), "{real}");
    assert!(kiln.ok(&["images"]).contains("app"));
    kiln.ok(&[
        "export",
        "app:1",
        "-o",
        kiln.scratch("still-whole.tar").to_str().unwrap(),
    ]);

    let out = kiln.ok(&["rmi", "--force", &id[7..19]]);
    assert!(out.contains("Deleted: "), "{out}");
    assert!(kiln.snapshot().blobs.is_empty());
    let err = kiln.fails(&["inspect", "app:1"]);
    assert!(err.contains("no such image: app:1"), "{err}");
}

#[test]
fn save_stores_shared_blobs_once() {
    let kiln = Kiln::new();
    let input = kiln.file("in.tar", &rich_rootfs());
    kiln.ok(&["import", "-c", "CMD [\"a\"]", &input, "a:1"]);
    kiln.ok(&["import", "-c", "CMD [\"b\"]", &input, "b:1"]);
    let saved = kiln.scratch("both.tar");
    kiln.ok(&["save", "-o", saved.to_str().unwrap(), "a:1", "b:1"]);
    let listing = common::sh(&format!("tar tf {}", saved.display()));
    let blobs: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("blobs/sha256/") && l.len() > 14)
        .collect();
    // Two manifests, two configs, one shared layer.
    assert_eq!(blobs.len(), 5, "{listing}");
    let manifest: serde_json::Value = serde_json::from_str(&common::sh(&format!(
        "tar xOf {} manifest.json",
        saved.display()
    )))
    .unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["Layers"], manifest[1]["Layers"]);

    // And stdout works the same as -o.
    let out = kiln.cmd().args(["save", "a:1", "b:1"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        fs::read(&saved).unwrap(),
        "save is deterministic"
    );
}

#[test]
fn load_reads_standard_input() {
    let kiln = Kiln::new();
    let input = kiln.file("in.tar", &rich_rootfs());
    kiln.ok(&["import", &input, "stdin:1"]);
    let id = kiln.image_id("stdin:1");
    let saved = kiln.scratch("saved.tar.zst");
    kiln.ok(&[
        "save",
        "--compress",
        "zstd",
        "-o",
        saved.to_str().unwrap(),
        "stdin:1",
    ]);
    let fresh = Kiln::new();
    let out = fresh.ok_stdin(&["load"], &fs::read(&saved).unwrap());
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        "Loaded image: stdin:1"
    );
    assert_eq!(fresh.image_id("stdin:1"), id);
}
