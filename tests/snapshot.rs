//! Snapshots on real overlayfs (CI runs as root): layers unpacked in overlay form stack
//! correctly, a step's upper directory becomes a layer that, applied onto its base by the
//! store's flatten logic, gives exactly the tree the step saw; the copying fallback gives
//! the same; deep images mount; nothing stays mounted or on disk after a drop, an error or
//! a SIGKILL followed by `cleanup_stale`.

mod common;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::fs::{PermissionsExt, chown, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use kiln_builder::snapshot::{
    Backend, BlobLayers, SnapshotOptions, SnapshotStore, cleanup_stale, mounts_below,
};
use kiln_store::{
    Compression, Descriptor, Digest, Image, ImageConfig, ImageStore, LayerOptions, LayerSink,
    LayerWriter, Manifest, OverlayXattrs, RootFs, export_flat, media_type, spec,
};
use tar::{EntryType, Header};

/// `setcap cap_net_bind_service+ep`: VFS_CAP_REVISION_2 | effective, bit 10 permitted.
const CAP_NET_BIND: &[u8] = &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn require_root() {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    assert!(
        root.unwrap_or(false),
        "snapshot tests mount overlayfs and create devices: run them as root (CI does)"
    );
}

struct Fixture {
    _dir: tempfile::TempDir,
    kiln_root: PathBuf,
    store: ImageStore,
    /// (layer descriptor, diffID), bottom first
    layers: Vec<(Descriptor, Digest)>,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let kiln_root = dir.path().join("root");
        Fixture::at(dir, kiln_root)
    }

    fn at(dir: tempfile::TempDir, kiln_root: PathBuf) -> Fixture {
        let store = ImageStore::open(&kiln_root).unwrap();
        Fixture {
            _dir: dir,
            kiln_root,
            store,
            layers: Vec::new(),
        }
    }

    /// The busybox rootfs and the rich rootfs (hard links, xattrs, devices) as two layers.
    fn with_base() -> Fixture {
        let mut f = Fixture::new();
        let busybox = fs::read(common::busybox_rootfs(f._dir.path())).unwrap();
        f.push(&busybox);
        f.push(&common::rich_rootfs());
        f
    }

    fn push(&mut self, tar: &[u8]) -> Digest {
        let layer = store_layer(&self.store, tar);
        let diff_id = layer.1.clone();
        self.layers.push(layer);
        diff_id
    }

    fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.1.clone()).collect()
    }

    fn blobs(&self) -> BlobLayers<'_> {
        let mut blobs = BlobLayers::new(self.store.blobs());
        for (d, diff_id) in &self.layers {
            blobs.insert(diff_id.clone(), d.digest.clone());
        }
        blobs
    }

    fn snapshots(&self, backend: Backend) -> SnapshotStore {
        let options = SnapshotOptions {
            backend,
            ..SnapshotOptions::default()
        };
        SnapshotStore::open(&self.kiln_root, options).unwrap()
    }

    /// What `kiln export` gives for these layers and `extra` on top: whiteouts applied.
    fn flattened(&self, extra: &[(Descriptor, Digest)]) -> BTreeMap<String, String> {
        let layers: Vec<_> = self.layers.iter().chain(extra).cloned().collect();
        let image = image_of(&self.store, &layers);
        let mut out = Vec::new();
        export_flat(&self.store, &image, &mut out).unwrap();
        canonical(&out)
    }

    /// Nothing mounted below the kiln root, no scratch directory left.
    fn assert_clean(&self) {
        assert_eq!(
            mounts_below(&self.kiln_root).unwrap(),
            Vec::<PathBuf>::new()
        );
        let scratch = self.kiln_root.join("snapshots/scratch");
        let left: Vec<_> = fs::read_dir(&scratch)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", scratch.display());
    }
}

fn store_layer(store: &ImageStore, tar: &[u8]) -> (Descriptor, Digest) {
    let mut sink = LayerSink::new(store.blobs(), Compression::None).unwrap();
    sink.write_all(tar).unwrap();
    let staged = sink.finish().unwrap();
    let descriptor = Descriptor::new(
        staged.media_type(),
        staged.blob.digest.clone(),
        staged.blob.size,
    );
    let diff_id = staged.diff_id.clone();
    staged.blob.commit(store.blobs(), None).unwrap();
    (descriptor, diff_id)
}

fn image_of(store: &ImageStore, layers: &[(Descriptor, Digest)]) -> Image {
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.1.clone()).collect(),
        },
        ..ImageConfig::default()
    };
    let config_bytes = spec::to_json(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            store.blobs().put_bytes(&config_bytes).unwrap(),
            config_bytes.len() as u64,
        ),
        layers: layers.iter().map(|l| l.0.clone()).collect(),
        subject: None,
        annotations: None,
    };
    let bytes = spec::to_json(&manifest);
    let top = Descriptor::new(
        media_type::OCI_MANIFEST,
        store.blobs().put_bytes(&bytes).unwrap(),
        bytes.len() as u64,
    );
    store.image(&top).unwrap()
}

/// A tree listing (common::tree_of) that does not depend on which name of a hard-linked
/// file an archive happened to store first: every name of a group shows the file and the
/// whole group. The root entry is left out.
fn canonical(tar: &[u8]) -> BTreeMap<String, String> {
    let tree = common::tree_of(tar);
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, value) in &tree {
        if path == "." {
            continue;
        }
        if value.starts_with("Link ") {
            let target = value
                .split(" link=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            groups
                .entry(target.to_string())
                .or_default()
                .push(path.clone());
        } else {
            out.insert(path.clone(), value.clone());
        }
    }
    for (target, mut names) in groups {
        names.push(target.clone());
        names.sort();
        let value = format!("{} names={names:?}", tree[&target]);
        for name in names {
            out.insert(name, value.clone());
        }
    }
    out
}

/// The tree under `dir` as the same listing.
fn tree_at(dir: &Path) -> BTreeMap<String, String> {
    let mut writer = LayerWriter::new(Vec::new(), LayerOptions::default());
    writer.append_tree(dir).unwrap();
    canonical(&writer.finish().unwrap())
}

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

/// (path, entry type, content) layers, with the tar crate.
fn layer_of(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, content) in entries {
        let mut h = Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
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

#[test]
fn images_deeper_than_the_lower_directory_limit_still_mount() {
    use EntryType::{Directory as D, Regular as F};
    let mut f = Fixture::new();
    for i in 0..600 {
        let name = format!("f/{i:03}");
        let mut entries = vec![("f/", D, ""), (name.as_str(), F, "x")];
        // Whiteouts inside the part that gets flattened, and above it.
        if i == 300 {
            entries.push(("f/.wh.005", F, ""));
        }
        if i == 550 {
            entries.push(("f/.wh.290", F, ""));
        }
        f.push(&layer_of(&entries));
    }
    let snapshots = f.snapshots(Backend::Overlay);
    let blobs = f.blobs();
    let ids = f.diff_ids();
    let mount = snapshots.mount(&ids, &blobs).unwrap();
    assert!(mount.is_overlay());
    assert!(mount.lower_count() <= snapshots.max_lowers());
    assert!(mount.lower_count() < 600);
    let seen = fs::read_dir(mount.root().join("f")).unwrap().count();
    assert_eq!(seen, 598);
    assert!(!mount.root().join("f/005").exists());
    assert!(!mount.root().join("f/290").exists());
    assert!(mount.root().join("f/599").exists());
    // A step deeper shares the flattened tree.
    let mut deeper = f.diff_ids();
    deeper.push(ids[599].clone());
    let second = snapshots.mount(&deeper, &blobs).unwrap();
    assert_eq!(
        fs::read_dir(f.kiln_root.join("snapshots/chains"))
            .unwrap()
            .count(),
        1
    );
    drop((mount, second));
    f.assert_clean();

    // The limit as a parameter: 20 layers in at most 4 lower directories.
    let small = SnapshotStore::open(
        &f.kiln_root,
        SnapshotOptions {
            backend: Backend::Overlay,
            max_lowers: 4,
            ..SnapshotOptions::default()
        },
    )
    .unwrap();
    let mount = small.mount(&ids[295..315], &blobs).unwrap();
    assert!(mount.lower_count() <= 4);
    let names: Vec<_> = (295..315).map(|i| format!("{i:03}")).collect();
    let mut seen: Vec<_> = fs::read_dir(mount.root().join("f"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, names);
    drop(mount);
    f.assert_clean();
}

#[test]
fn nothing_stays_mounted_after_a_drop_or_an_error() {
    let f = Fixture::with_base();
    let snapshots = f.snapshots(Backend::Overlay);
    let blobs = f.blobs();
    let mount = snapshots.mount(&f.diff_ids(), &blobs).unwrap();
    fs::write(mount.root().join("busy"), b"x").unwrap();
    assert_eq!(
        mounts_below(&f.kiln_root).unwrap(),
        [mount.root().to_path_buf()]
    );
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.contains(mount.root().to_str().unwrap()))
        .unwrap();
    assert!(line.contains("redirect_dir=nofollow"), "{line}");
    drop(mount);
    f.assert_clean();
    // A layer the store does not hold: an error, and nothing left behind.
    let mut ids = f.diff_ids();
    ids.push(Digest::of(b"no such layer"));
    let err = snapshots.mount(&ids, &blobs).unwrap_err();
    assert!(err.to_string().contains("no blob"), "{err}");
    f.assert_clean();
    // FROM scratch mounts an empty root.
    let mount = snapshots.mount(&[], &blobs).unwrap();
    assert_eq!(fs::read_dir(mount.root()).unwrap().count(), 0);
    drop(mount);
    f.assert_clean();
}

/// Run by `a_build_killed_by_sigkill_is_cleaned_up_by_the_next`: mount a step's root under
/// `KILN_TEST_ROOT`, say where, and wait to be killed.
#[test]
#[ignore = "a helper process for the SIGKILL test"]
fn helper_mount_and_wait() {
    let Some(root) = std::env::var_os("KILN_TEST_ROOT") else {
        return;
    };
    let store = ImageStore::open(&root).unwrap();
    let layer = store_layer(&store, &layer_of(&[("file", EntryType::Regular, "x")]));
    let mut blobs = BlobLayers::new(store.blobs());
    blobs.insert(layer.1.clone(), layer.0.digest.clone());
    let snapshots = SnapshotStore::open(Path::new(&root), SnapshotOptions::default()).unwrap();
    let mount = snapshots.mount(&[layer.1], &blobs).unwrap();
    fs::write(mount.root().join("written"), b"x").unwrap();
    println!("MOUNTED {}", mount.root().display());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_build_killed_by_sigkill_is_cleaned_up_by_the_next() {
    let f = Fixture::with_base();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_mount_and_wait",
            "--ignored",
            "--nocapture",
        ])
        .env("KILN_TEST_ROOT", &f.kiln_root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let merged = loop {
        let line = lines.next().expect("the helper ended early").unwrap();
        if let Some(path) = line.strip_prefix("MOUNTED ") {
            break PathBuf::from(path);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no mount from the helper"
        );
    };
    // A live build beside it must survive the cleanup.
    let snapshots = f.snapshots(Backend::Overlay);
    let blobs = f.blobs();
    let live = snapshots.mount(&f.diff_ids(), &blobs).unwrap();

    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(mounts_below(&f.kiln_root).unwrap().contains(&merged));

    let report = cleanup_stale(&snapshots.scratch_dir()).unwrap();
    assert_eq!(report.unmounted, std::slice::from_ref(&merged));
    assert_eq!(report.removed, [merged.parent().unwrap().to_path_buf()]);
    assert_eq!(
        mounts_below(&f.kiln_root).unwrap(),
        [live.root().to_path_buf()]
    );
    assert!(live.root().join("bin/busybox").exists());
    drop(live);
    f.assert_clean();
    // The layer the killed process unpacked stays for the next build.
    assert_eq!(
        fs::read_dir(f.kiln_root.join("snapshots/layers"))
            .unwrap()
            .count(),
        3
    );
}

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn auto_copies_where_overlayfs_cannot_mount() {
    require_root();
    // overlayfs refuses another overlayfs as its upper directory: a kiln root inside one
    // is a place without usable overlayfs.
    let dir = tempfile::tempdir().unwrap();
    let outer = dir.path().join("outer");
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir_all(outer.join(d)).unwrap();
    }
    let o = |d: &str| outer.join(d).display().to_string();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        o("lower"),
        o("upper"),
        o("work")
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options, &o("merged")])
        .status()
        .unwrap();
    assert!(status.success());
    let outer_mount = Mounted(outer.join("merged"));

    let kiln_root = outer.join("merged/kiln");
    let mut f = Fixture::at(dir, kiln_root);
    f.push(&layer_of(&[
        ("a/", EntryType::Directory, ""),
        ("a/f", EntryType::Regular, "x"),
    ]));
    let snapshots = f.snapshots(Backend::Auto);
    let blobs = f.blobs();
    let mount = snapshots.mount(&f.diff_ids(), &blobs).unwrap();
    assert!(!mount.is_overlay());
    assert_eq!(fs::read(mount.root().join("a/f")).unwrap(), b"x");
    fs::remove_file(mount.root().join("a/f")).unwrap();
    fs::write(mount.root().join("b"), b"new").unwrap();
    let layer = mount
        .write_layer(Vec::new(), &LayerOptions::default())
        .unwrap();
    assert_eq!(entries(&layer), ["a", "a/.wh.f", "b"]);
    drop(mount);
    // Forced overlay says why it cannot mount.
    let err = f
        .snapshots(Backend::Overlay)
        .mount(&f.diff_ids(), &blobs)
        .unwrap_err();
    assert!(
        err.to_string().contains("mounting an overlay of 1 layers"),
        "{err}"
    );
    f.assert_clean();
    drop(outer_mount); // before the temporary directory holding it goes
}
