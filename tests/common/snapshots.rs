//! Helpers for the snapshot tests: a kiln root with layers in its store, images of them,
//! and tree listings that compare a mounted root with what `export_flat` gives.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use kiln_builder::snapshot::{Backend, BlobLayers, SnapshotOptions, SnapshotStore, mounts_below};
use kiln_store::{
    Compression, Descriptor, Digest, Image, ImageConfig, ImageStore, LayerOptions, LayerSink,
    LayerWriter, Manifest, RootFs, export_flat, media_type, spec,
};
use tar::{EntryType, Header};

pub fn require_root() {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    assert!(
        root.unwrap_or(false),
        "snapshot tests mount overlayfs and create devices: run them as root (CI does)"
    );
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub kiln_root: PathBuf,
    pub store: ImageStore,
    /// (layer descriptor, diffID), bottom first
    pub layers: Vec<(Descriptor, Digest)>,
}

impl Fixture {
    pub fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let kiln_root = dir.path().join("root");
        Fixture::at(dir, kiln_root)
    }

    pub fn at(dir: tempfile::TempDir, kiln_root: PathBuf) -> Fixture {
        let store = ImageStore::open(&kiln_root).unwrap();
        Fixture {
            dir,
            kiln_root,
            store,
            layers: Vec::new(),
        }
    }

    /// The busybox rootfs and the rich rootfs (hard links, xattrs, devices) as two layers.
    pub fn with_base() -> Fixture {
        let mut f = Fixture::new();
        let busybox = fs::read(super::busybox_rootfs(f.dir.path())).unwrap();
        f.push(&busybox);
        f.push(&super::rich_rootfs());
        f
    }

    pub fn push(&mut self, tar: &[u8]) -> Digest {
        let layer = store_layer(&self.store, tar);
        let diff_id = layer.1.clone();
        self.layers.push(layer);
        diff_id
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.1.clone()).collect()
    }

    pub fn blobs(&self) -> BlobLayers<'_> {
        let mut blobs = BlobLayers::new(self.store.blobs());
        for (d, diff_id) in &self.layers {
            blobs.insert(diff_id.clone(), d.digest.clone());
        }
        blobs
    }

    pub fn snapshots(&self, backend: Backend) -> SnapshotStore {
        let options = SnapshotOptions {
            backend,
            ..SnapshotOptions::default()
        };
        SnapshotStore::open(&self.kiln_root, options).unwrap()
    }

    /// What `kiln export` gives for these layers and `extra` on top: whiteouts applied.
    pub fn flattened(&self, extra: &[(Descriptor, Digest)]) -> BTreeMap<String, String> {
        let layers: Vec<_> = self.layers.iter().chain(extra).cloned().collect();
        let image = image_of(&self.store, &layers);
        let mut out = Vec::new();
        export_flat(&self.store, &image, &mut out).unwrap();
        canonical(&out)
    }

    /// Nothing mounted below the kiln root, no scratch directory left.
    pub fn assert_clean(&self) {
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

pub fn store_layer(store: &ImageStore, tar: &[u8]) -> (Descriptor, Digest) {
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

pub fn image_of(store: &ImageStore, layers: &[(Descriptor, Digest)]) -> Image {
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

/// A tree listing (super::tree_of) that does not depend on which name of a hard-linked
/// file an archive happened to store first: every name of a group shows the file and the
/// whole group. The root entry is left out.
pub fn canonical(tar: &[u8]) -> BTreeMap<String, String> {
    let tree = super::tree_of(tar);
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
pub fn tree_at(dir: &Path) -> BTreeMap<String, String> {
    let mut writer = LayerWriter::new(Vec::new(), LayerOptions::default());
    writer.append_tree(dir).unwrap();
    canonical(&writer.finish().unwrap())
}

/// (path, entry type, content) layers, with the tar crate.
pub fn layer_of(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
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

/// Unmounts on drop, so that a failing test leaves no mount behind.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
