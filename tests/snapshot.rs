//! Snapshots on real overlayfs (CI runs as root): layers unpacked in overlay form stack
//! correctly, and a step's upper directory becomes a layer that, applied onto its base by
//! the store's flatten logic, gives exactly the tree the step saw; the copying fallback
//! gives the same.

mod common;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{PermissionsExt, chown, symlink},
    path::Path,
    process::Command,
};

use common::snapshots::{Fixture, canonical, layer_of, store_layer, tree_at};
use kiln_builder::snapshot::{Backend, SnapshotOptions, SnapshotStore};
use kiln_store::{LayerOptions, OverlayXattrs};
use tar::EntryType;

/// `setcap cap_net_bind_service+ep`: VFS_CAP_REVISION_2 | effective, bit 10 permitted.
const CAP_NET_BIND: &[u8] = &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn mknod(path: &Path, args: &[&str]) {
    let status = Command::new("mknod").arg(path).args(args).status().unwrap();
    assert!(status.success());
}

/// What a RUN step might do, done straight into the step's root.
fn simulate_step(root: &Path) {
    // Create: a file with an owner and mode, a symlink, a device.
    fs::create_dir_all(root.join("new/dir")).unwrap();
    fs::write(root.join("new/dir/file"), b"hello").unwrap();
    chown(root.join("new/dir/file"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(
        root.join("new/dir/file"),
        fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    symlink("../etc/hostname", root.join("new/link")).unwrap();
    mknod(&root.join("new/zero"), &["c", "1", "5"]);
    // A socket left behind by a daemon the step ran: never part of a layer.
    drop(std::os::unix::net::UnixListener::bind(root.join("new/socket")).unwrap());
    // A setcap-like xattr on the new file, and a changed one on a base file.
    xattr::set(
        root.join("new/dir/file"),
        "security.capability",
        CAP_NET_BIND,
    )
    .unwrap();
    xattr::set(
        root.join("usr/bin/ping"),
        "security.capability",
        CAP_NET_BIND,
    )
    .unwrap();
    // Modify a base file, delete a base file and a base directory.
    fs::write(root.join("home/user/empty"), b"not any more").unwrap();
    fs::remove_file(root.join("usr/bin/ünïcödé")).unwrap();
    fs::remove_dir_all(root.join("usr/share")).unwrap();
    // rm -rf /etc && mkdir /etc
    fs::remove_dir_all(root.join("etc")).unwrap();
    fs::create_dir(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), b"kiln\n").unwrap();
    // A hard link to a base file.
    fs::hard_link(root.join("bin/busybox"), root.join("bin/bb-link")).unwrap();
    // chmod and chown of base entries.
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1770)).unwrap();
    chown(root.join("fifo"), Some(42), Some(43)).unwrap();
    std::os::unix::fs::lchown(root.join("usr/bin/sh"), Some(7), Some(7)).unwrap();
    fs::set_permissions(root.join("dev-null"), fs::Permissions::from_mode(0o600)).unwrap();
}

/// Run a simulated step with `backend`: (the layer tar, the tree the step saw, the tree the
/// layer gives applied onto the base).
fn step_with(
    f: &Fixture,
    backend: Backend,
) -> (Vec<u8>, BTreeMap<String, String>, BTreeMap<String, String>) {
    let snapshots = f.snapshots(backend);
    let blobs = f.blobs();
    let mount = snapshots.mount(&f.diff_ids(), &blobs).unwrap();
    assert_eq!(mount.is_overlay(), backend == Backend::Overlay);
    assert_eq!(
        tree_at(mount.root()),
        f.flattened(&[]),
        "the base, before the step"
    );
    simulate_step(mount.root());
    let seen = tree_at(mount.root());
    let layer = mount
        .write_layer(Vec::new(), &LayerOptions::default())
        .unwrap();
    mount.release().unwrap();
    f.assert_clean();
    let applied = f.flattened(&[store_layer(&f.store, &layer)]);
    (layer, seen, applied)
}

fn entries(layer: &[u8]) -> Vec<String> {
    common::tree_of(layer).into_keys().collect()
}

#[test]
fn an_overlay_steps_layer_applied_to_its_base_gives_the_tree_the_step_saw() {
    let f = Fixture::with_base();
    let (layer, seen, applied) = step_with(&f, Backend::Overlay);
    assert_eq!(applied, seen);
    let names = entries(&layer);
    for expected in [
        "etc/.wh..wh..opq",
        "usr/bin/.wh.ünïcödé",
        "usr/.wh.share",
        "bin/bb-link",
        "bin/busybox",
        "usr/bin/ping",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    // Untouched base files are not in the layer.
    assert!(
        !names
            .iter()
            .any(|n| n == "usr/bin/tool" || n.starts_with("root"))
    );
    let tree = common::tree_of(&layer);
    assert!(
        tree["usr/bin/ping"].contains("security.capability"),
        "{}",
        tree["usr/bin/ping"]
    );
    assert!(tree["new/zero"].starts_with("Char") && tree["new/zero"].contains("dev=1:5"));
    assert!(tree["new/dir/file"].contains("mode=4750 owner=1000:1000"));
    assert!(
        !tree.values().any(|v| v.contains("overlay")),
        "overlay xattrs leaked"
    );
}

#[test]
fn the_copying_fallback_gives_the_same_layer_as_overlayfs() {
    let f = Fixture::with_base();
    let (overlay_layer, overlay_seen, overlay_applied) = step_with(&f, Backend::Overlay);
    let (copy_layer, copy_seen, copy_applied) = step_with(&f, Backend::Copy);
    assert_eq!(copy_applied, copy_seen);
    assert_eq!(copy_seen, overlay_seen);
    assert_eq!(copy_applied, overlay_applied);
    // The same entries, but for how a replaced directory is said: overlayfs marks /etc
    // opaque, the comparison lists what went.
    let not_whiteout = |layer: &[u8]| {
        let mut tree = canonical(layer);
        tree.retain(|path, _| !path.rsplit('/').next().unwrap().starts_with(".wh."));
        tree
    };
    assert_eq!(not_whiteout(&copy_layer), not_whiteout(&overlay_layer));
    let copy_names = entries(&copy_layer);
    for expected in ["etc/.wh.passwd", "etc/.wh.shadow", "usr/.wh.share"] {
        assert!(copy_names.iter().any(|n| n == expected), "{expected}");
    }
}

#[test]
fn whiteouts_and_opaque_dirs_of_overlay_form_layers_hide_the_layers_below() {
    use EntryType::{Directory as D, Regular as F};
    for xattrs in [OverlayXattrs::Trusted, OverlayXattrs::User] {
        let mut f = Fixture::new();
        f.push(&layer_of(&[
            ("a/", D, ""),
            ("a/gone", F, "x"),
            ("a/kept", F, "y"),
            ("o/", D, ""),
            ("o/old", F, "old"),
            ("o/sub/", D, ""),
            ("o/sub/deep", F, "deep"),
        ]));
        f.push(&layer_of(&[
            ("a/", D, ""),
            ("a/.wh.gone", F, ""),
            ("o/", D, ""),
            ("o/.wh..wh..opq", F, ""),
            ("o/new", F, "new"),
        ]));
        let snapshots = SnapshotStore::open(
            &f.kiln_root,
            SnapshotOptions {
                backend: Backend::Overlay,
                overlay_xattrs: xattrs,
                ..SnapshotOptions::default()
            },
        )
        .unwrap();
        let blobs = f.blobs();
        let mount = snapshots.mount(&f.diff_ids(), &blobs).unwrap();
        let r = mount.root();
        assert!(!r.join("a/gone").exists(), "{xattrs:?}");
        assert_eq!(fs::read(r.join("a/kept")).unwrap(), b"y");
        assert!(
            !r.join("o/old").exists() && !r.join("o/sub").exists(),
            "{xattrs:?}"
        );
        assert_eq!(fs::read(r.join("o/new")).unwrap(), b"new");
        assert_eq!(tree_at(r), f.flattened(&[]));
        // A layer repeated above another (overlayfs takes a directory only once).
        let mut repeated = f.diff_ids();
        repeated.push(repeated[0].clone());
        let again = snapshots.mount(&repeated, &blobs).unwrap();
        assert_eq!(tree_at(again.root()), f.flattened(&[f.layers[0].clone()]));
        assert!(again.root().join("a/gone").exists() && again.root().join("o/old").exists());
        drop(again);
        // A step in a rootless-style overlay: its opaque directory is read back from the
        // same namespace.
        fs::remove_dir_all(r.join("a")).unwrap();
        fs::create_dir(r.join("a")).unwrap();
        let layer = mount
            .write_layer(Vec::new(), &LayerOptions::default())
            .unwrap();
        assert!(
            entries(&layer).iter().any(|n| n == "a/.wh..wh..opq"),
            "{xattrs:?}"
        );
        drop(mount);
        f.assert_clean();
    }
}
