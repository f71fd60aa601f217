//! Real peers read and write our tarballs: skopeo (docker-archive, oci-archive, oci) and
//! umoci (OCI layout). These are the tools air-gapped sites already use.

mod common;

use std::fs;

use common::{Kiln, busybox_rootfs, require_tool, rich_rootfs, sh, tree_of};

fn skopeo(args: &str) -> String {
    require_tool("skopeo");
    // A private blob-info cache: skopeo must not remember blobs across tests.
    sh(&format!("skopeo --override-os linux {args}"))
}

fn seeded(rootfs: &[u8]) -> (Kiln, String) {
    let kiln = Kiln::new();
    let input = kiln.scratch("rootfs.tar");
    fs::write(&input, rootfs).unwrap();
    kiln.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV KILN_TEST=peers",
        input.to_str().unwrap(),
        "busybox:peers",
    ]);
    (kiln, "busybox:peers".into())
}

#[test]
fn skopeo_reads_our_archive_as_docker_archive_and_oci_archive() {
    let kiln = Kiln::new();
    let rootfs = fs::read(busybox_rootfs(kiln.dir.path())).unwrap();
    let (kiln, name) = seeded(&rootfs);
    let ours = kiln.scratch("ours.tar");
    kiln.ok(&["save", "-o", ours.to_str().unwrap(), &name]);
    let id = kiln.image_id(&name);
    let digest = kiln.manifest_digest(&name);

    // As a Docker archive: skopeo reads manifest.json and finds our config.
    let config: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "inspect --config docker-archive:{}",
        ours.display()
    )))
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["KILN_TEST=peers"])
    );
    let dir1 = kiln.scratch("from-docker-archive");
    skopeo(&format!(
        "copy docker-archive:{} oci:{}:t",
        ours.display(),
        dir1.display()
    ));

    // As an OCI archive: the manifest digest is ours, byte for byte.
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&format!("inspect oci-archive:{}", ours.display()))).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    let dir2 = kiln.scratch("from-oci-archive");
    skopeo(&format!(
        "copy oci-archive:{} oci:{}:t",
        ours.display(),
        dir2.display()
    ));
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir2.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // Both copies carry our config: same image ID.
    for dir in [&dir1, &dir2] {
        let config: serde_json::Value = serde_json::from_str(&skopeo(&format!(
            "inspect --config oci:{}:t",
            dir.display()
        )))
        .unwrap();
        let bytes = serde_json::to_vec(&config).unwrap();
        assert!(!bytes.is_empty());
        let raw = skopeo(&format!("inspect --raw oci:{}:t", dir.display()));
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            manifest["config"]["digest"],
            id.as_str(),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn kiln_loads_what_skopeo_writes_with_matching_digests() {
    let (kiln, name) = seeded(&rich_rootfs());
    let id = kiln.image_id(&name);
    let digest = kiln.manifest_digest(&name);
    let layout = kiln.root().join("images");
    let full = "docker.io/library/busybox:peers";

    // Our store is an OCI layout: skopeo reads it directly.
    let docker_tar = kiln.scratch("skopeo-docker.tar");
    skopeo(&format!(
        "copy oci:{}:{full} docker-archive:{}:busybox:from-skopeo",
        layout.display(),
        docker_tar.display()
    ));
    let oci_tar = kiln.scratch("skopeo-oci.tar");
    skopeo(&format!(
        "copy oci:{}:{full} oci-archive:{}:docker.io/library/busybox:from-skopeo-oci",
        layout.display(),
        oci_tar.display()
    ));

    let fresh = Kiln::new();
    let out = fresh.ok(&["load", "-i", docker_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:from-skopeo");
    // Docker archives hold no manifest: the image ID (config digest) is what must match.
    assert_eq!(fresh.image_id("busybox:from-skopeo"), id);

    let out = fresh.ok(&["load", "-i", oci_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:from-skopeo-oci");
    assert_eq!(fresh.manifest_digest("busybox:from-skopeo-oci"), digest);
    assert_eq!(fresh.image_id("busybox:from-skopeo-oci"), id);

    // And the filesystem is the one we imported.
    for image in ["busybox:from-skopeo", "busybox:from-skopeo-oci"] {
        let out = fresh.scratch("export.tar");
        fresh.ok(&["export", image, "-o", out.to_str().unwrap()]);
        assert_eq!(
            tree_of(&fs::read(&out).unwrap()),
            tree_of(&rich_rootfs()),
            "{image}"
        );
    }
}

#[test]
fn umoci_unpacks_our_saved_layout_to_the_same_tree() {
    require_tool("umoci");
    for rootfs in [None, Some(rich_rootfs())] {
        let kiln = Kiln::new();
        let rootfs = rootfs.unwrap_or_else(|| fs::read(busybox_rootfs(kiln.dir.path())).unwrap());
        let (kiln, name) = seeded(&rootfs);
        let ours = kiln.scratch("ours.tar");
        kiln.ok(&["save", "-o", ours.to_str().unwrap(), &name]);
        let layout = kiln.scratch("layout");
        let bundle = kiln.scratch("bundle");
        let repacked = kiln.scratch("repacked.tar");
        // The saved tar *is* an OCI layout once unpacked; umoci finds the image by ref.name.
        sh(&format!(
            "mkdir -p {l} && tar -xf {o} -C {l} && umoci unpack --image {l}:peers {b} && \
             tar --sort=name --numeric-owner --xattrs --xattrs-include='*' -C {b}/rootfs -cf {r} .",
            l = layout.display(),
            o = ours.display(),
            b = bundle.display(),
            r = repacked.display(),
        ));
        let mut want = tree_of(&rootfs);
        let mut got = tree_of(&fs::read(&repacked).unwrap());
        // umoci owns the bundle's root directory; compare what is inside it.
        want.remove(".");
        got.remove(".");
        assert_eq!(got, want, "umoci's tree differs");
    }
}
