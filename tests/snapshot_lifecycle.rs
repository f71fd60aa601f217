//! Snapshot lifecycles on real overlayfs (CI runs as root): images deeper than overlayfs's
//! lower-directory limit mount; overlayfs unavailable means copies; nothing stays mounted
//! or on disk after a drop, an error, or a SIGKILL followed by `cleanup_stale`.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::snapshots::{Fixture, Mounted, layer_of, require_root, store_layer};
use kiln_builder::snapshot::{
    Backend, BlobLayers, SnapshotOptions, SnapshotStore, cleanup_stale, mounts_below,
};
use kiln_store::{Digest, ImageStore, LayerOptions};
use tar::EntryType;

fn entries(layer: &[u8]) -> Vec<String> {
    common::tree_of(layer).into_keys().collect()
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
