//! `kiln copy` end to end: every pair of transports (registry, OCI layout, OCI archive,
//! Docker archive, kiln's store) with digests kept, the air-gap flow, multi-platform
//! indexes, and archives that are refused before anything is written.

mod common;

use std::fs;

use common::{Kiln, servers::Registry, skopeo_digest, tar_of_files, with_busybox_as};
use sha2::{Digest as _, Sha256};

fn with_busybox() -> Kiln {
    with_busybox_as("busybox:1")
}

#[test]
fn copy_between_every_pair_of_transports() {
    let kiln = with_busybox();
    let registry = Registry::start(&kiln);
    let r = registry.addr.clone();
    let dir = kiln.scratch("copies");
    fs::create_dir_all(&dir).unwrap();
    let digest = kiln.manifest_digest("busybox:1");
    let kinds = ["docker", "oci", "oci-archive", "docker-archive", "kiln"];
    let name = |kind: &str, i: usize| -> String {
        let d = dir.display();
        match kind {
            "docker" => format!("docker://{r}/m/k{i}:t"),
            "oci" => format!("oci:{d}/oci-{i}:t"),
            "oci-archive" => format!("oci-archive:{d}/oa-{i}.tar:t"),
            "docker-archive" => format!("docker-archive:{d}/da-{i}.tar:m/k{i}:t"),
            _ => format!("kiln:m/k{i}:t"),
        }
    };
    // What the destination holds, read back by a witness that does not share our code
    // where one exists (skopeo), else by a fresh kiln store.
    let check = |location: &str, i: usize| {
        let kind = location.split(':').next().unwrap();
        match kind {
            "docker" | "oci" | "oci-archive" => {
                assert_eq!(skopeo_digest(location), digest, "{location}");
            }
            _ => {
                let witness = Kiln::new();
                let src = if kind == "kiln" {
                    // The store itself: inspect it in place.
                    assert_eq!(kiln.manifest_digest(&format!("m/k{i}:t")), digest);
                    return;
                } else {
                    location.to_string()
                };
                witness.ok(&["copy", &src, "kiln:witness:1"]);
                assert_eq!(witness.manifest_digest("witness:1"), digest, "{location}");
            }
        }
    };
    for (i, kind) in kinds.iter().enumerate() {
        kiln.ok(&["copy", "-q", "kiln:busybox:1", &name(kind, i)]);
        check(&name(kind, i), i);
    }
    let mut n = kinds.len();
    for (i, from) in kinds.iter().enumerate() {
        for to in kinds {
            let target = name(to, n);
            kiln.ok(&["copy", "-q", &name(from, i), &target]);
            check(&target, n);
            n += 1;
        }
    }
    // Bad names fail before anything is touched.
    let err = kiln.fails(&["copy", "dir:/tmp/x", "kiln:x:1"]);
    assert!(err.contains("not supported"), "{err}");
    let err = kiln.fails(&["copy", &format!("oci:{}/none", dir.display()), "kiln:x:1"]);
    assert!(err.contains("not an OCI image layout"), "{err}");
}

#[test]
fn air_gap_bundle_into_a_registry() {
    let kiln = with_busybox();
    kiln.ok(&["tag", "busybox:1", "app/a:1"]);
    kiln.ok(&["tag", "busybox:1", "app/b:1"]);
    let bundle = kiln.scratch("bundle.tar");
    let b = bundle.to_str().unwrap();
    kiln.ok(&["save", "-o", b, "busybox:1", "app/a:1", "app/b:1"]);
    let digest = kiln.manifest_digest("busybox:1");

    // The other side: no daemon, straight from the file into the registry…
    let site = Kiln::new();
    let registry = Registry::start(&site);
    let r = &registry.addr;
    let err = site.fails(&[
        "copy",
        &format!("docker-archive:{b}"),
        &format!("docker://{r}/x:1"),
    ]);
    assert!(err.contains("holds 3 images"), "{err}");
    site.ok(&[
        "copy",
        &format!("docker-archive:{b}:app/b:1"),
        &format!("docker://{r}/site/b:1"),
    ]);
    assert_eq!(skopeo_digest(&format!("docker://{r}/site/b:1")), digest);
    // …or load and push.
    site.ok(&["load", "-i", b]);
    site.ok(&["push", "app/a:1", &format!("{r}/site/a:1")]);
    assert_eq!(skopeo_digest(&format!("docker://{r}/site/a:1")), digest);
}

#[test]
fn multi_platform_index_keeps_or_picks_a_platform() {
    let kiln = with_busybox();
    let layout = kiln.scratch("multi");
    kiln.ok(&[
        "copy",
        "-q",
        "kiln:busybox:1",
        &format!("oci:{}:host", layout.display()),
    ]);
    let host_digest = kiln.manifest_digest("busybox:1");

    // A second image for another platform: the same layer, a config saying s390x.
    let blobs = layout.join("blobs/sha256");
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let read =
        |digest: &str| fs::read(blobs.join(digest.strip_prefix("sha256:").unwrap())).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&read(&host_digest)).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let host_arch = config["architecture"].as_str().unwrap().to_string();
    config["architecture"] = "s390x".into();
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let mut other = manifest.clone();
    other["config"]["digest"] = config_digest.into();
    other["config"]["size"] = config_size.into();
    let (other_digest, other_size) = put(&serde_json::to_vec(&other).unwrap());
    let host_size = read(&host_digest).len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": host_digest,
             "size": host_size, "platform": {"os": "linux", "architecture": host_arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest,
             "size": other_size, "platform": {"os": "linux", "architecture": "s390x"}},
        ]
    });
    let (index_digest, index_size) = put(&serde_json::to_vec(&index).unwrap());
    // The same two images in Docker's schema2 media types, under a Docker manifest list.
    let docker = |m: &serde_json::Value| -> (String, usize) {
        let mut m = m.clone();
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
        m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
        for layer in m["layers"].as_array_mut().unwrap() {
            layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
        }
        put(&serde_json::to_vec(&m).unwrap())
    };
    let (docker_host, docker_host_size) = docker(&manifest);
    let (docker_other, docker_other_size) = docker(&other);
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": docker_host, "size": docker_host_size,
             "platform": {"os": "linux", "architecture": host_arch}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": docker_other, "size": docker_other_size,
             "platform": {"os": "linux", "architecture": "s390x"}},
        ]
    });
    let (list_digest, list_size) = put(&serde_json::to_vec(&list).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json",
             "digest": index_digest, "size": index_size,
             "annotations": {"org.opencontainers.image.ref.name": "multi"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
             "digest": list_digest, "size": list_size,
             "annotations": {"org.opencontainers.image.ref.name": "list"}},
        ]
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let registry = Registry::start(&kiln);
    let image = format!("{}/multi/app:1", registry.addr);
    kiln.ok(&[
        "copy",
        "--all-platforms",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{image}"),
    ]);
    assert_eq!(skopeo_digest(&format!("docker://{image}")), index_digest);

    let host = Kiln::new();
    host.ok(&["pull", &image]);
    assert_eq!(host.manifest_digest(&image), host_digest);

    let s390x = Kiln::new();
    s390x.ok(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(s390x.manifest_digest(&image), other_digest);

    let all = Kiln::new();
    all.ok(&["pull", "--all-platforms", &image]);
    let stored = fs::read_to_string(all.root().join("images/index.json")).unwrap();
    assert!(stored.contains(&index_digest), "{stored}");
    assert_eq!(
        all.manifest_digest(&image),
        host_digest,
        "inspect picks the host"
    );

    // Docker's manifest list, both ways: pushed whole, one platform pulled, digests kept.
    let list_image = format!("{}/multi/app:list", registry.addr);
    kiln.ok(&[
        "copy",
        "--all-platforms",
        &format!("oci:{}:list", layout.display()),
        &format!("docker://{list_image}"),
    ]);
    assert_eq!(
        skopeo_digest(&format!("docker://{list_image}")),
        list_digest
    );
    let docker_pull = Kiln::new();
    docker_pull.ok(&["pull", "--platform", "linux/s390x", &list_image]);
    assert_eq!(docker_pull.manifest_digest(&list_image), docker_other);
    let v: serde_json::Value =
        serde_json::from_str(&docker_pull.ok(&["inspect", &list_image])).unwrap();
    assert_eq!(v[0]["Architecture"], "s390x");
    assert_eq!(
        v[0]["MediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let err = Kiln::new().fails(&["pull", "--platform", "linux/riscv64", &image]);
    assert!(err.contains("no image for linux/riscv64"), "{err}");
}

#[test]
fn a_tampered_oci_archive_is_refused_before_anything_is_written() {
    let kiln = with_busybox();
    let good = kiln.scratch("good.tar");
    kiln.ok(&[
        "copy",
        "kiln:busybox:1",
        &format!("oci-archive:{}:t", good.display()),
    ]);
    // Flip a byte in the largest blob (the layer), keeping its name.
    let mut entries = common::files_of(&fs::read(&good).unwrap());
    let largest = (0..entries.len())
        .max_by_key(|&i| entries[i].1.len())
        .unwrap();
    let middle = entries[largest].1.len() / 2;
    entries[largest].1[middle] ^= 0xff;
    let name = entries[largest].0.clone();
    let bad = kiln.file("bad.tar", &tar_of_files(&entries));

    let out = kiln.scratch("out");
    let before = kiln.snapshot();
    let err = kiln.fails(&[
        "copy",
        &format!("oci-archive:{bad}:t"),
        &format!("oci:{}:t", out.display()),
    ]);
    let hex = name.rsplit('/').next().unwrap();
    assert!(err.contains(hex) && err.contains("mismatch"), "{err}");
    assert!(
        !out.exists(),
        "the destination was created for a bad source"
    );
    assert_eq!(kiln.snapshot(), before, "the store changed");

    // Not a layout at all: a clear error.
    let junk = kiln.file(
        "junk.tar",
        &tar_of_files(&[("etc/passwd".into(), b"x".to_vec())]),
    );
    let err = kiln.fails(&["copy", &format!("oci-archive:{junk}"), "kiln:x:1"]);
    assert!(err.contains("not an OCI image layout"), "{err}");
}
