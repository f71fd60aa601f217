//! Helpers for the end-to-end tests: a `kiln` with its own store, fixture rootfs tarballs,
//! tree listings to compare archives by content, and store snapshots for "nothing changed".

#![allow(dead_code)]

pub mod builds;
pub mod docker;
pub mod hostile;
pub mod http;
pub mod scripted;
pub mod servers;
pub mod snapshots;
pub mod token;

use std::{
    collections::BTreeMap,
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

pub struct Kiln {
    pub dir: tempfile::TempDir,
}

impl Kiln {
    pub fn new() -> Kiln {
        Kiln {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A scratch directory beside the store, for archives and unpacked trees.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    /// Write bytes to a scratch file and return its path as a string, for arguments.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.scratch(name);
        fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.env("KILN_ROOT", self.root());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Run, require success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run with bytes on stdin, require success, return stdout.
    pub fn ok_stdin(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let out = self.run_stdin(args, input);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Run with bytes on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out
    }

    /// Run, require failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kiln {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked"), "kiln panicked:\n{stderr}");
        stderr
    }

    /// Blob names, index.json, and leftover staging files: all of the store's state.
    pub fn snapshot(&self) -> StoreSnapshot {
        let root = self.root();
        let list = |dir: PathBuf| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&dir)
                .map(|rd| {
                    rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        StoreSnapshot {
            blobs: list(root.join("images/blobs/sha256")),
            index: fs::read_to_string(root.join("images/index.json")).unwrap_or_default(),
            staging: list(root.join("tmp")),
        }
    }

    /// The image ID (config digest) of an image.
    pub fn image_id(&self, name: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0]["Id"].as_str().unwrap().to_string()
    }

    pub fn manifest_digest(&self, name: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0]["Digest"].as_str().unwrap().to_string()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct StoreSnapshot {
    pub blobs: Vec<String>,
    pub index: String,
    pub staging: Vec<String>,
}

/// Fail loudly when a peer tool is missing: the test command installs them, and a test
/// that quietly skips would call unchecked work done.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "{name} is not installed: run the README's test command (it installs the peers)"
    );
}

pub fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-euc", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}\nfailed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A store holding the fixture busybox rootfs as `name`, with `CMD ["sh"]`.
pub fn with_busybox_as(name: &str) -> Kiln {
    let kiln = Kiln::new();
    let rootfs = busybox_rootfs(kiln.dir.path());
    kiln.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        rootfs.to_str().unwrap(),
        name,
    ]);
    kiln
}

pub fn skopeo(args: &str) -> String {
    require_tool("skopeo");
    sh(&format!("skopeo {args}"))
}

/// The digest of what skopeo reads from `location` (its raw manifest, hashed).
pub fn skopeo_digest(location: &str) -> String {
    let raw = skopeo(&format!("inspect --raw --tls-verify=false {location}"));
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(raw.trim_end_matches('\n')))
    )
}

/// The busybox base rootfs made by the fixture script.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    require_tool("busybox");
    let out = dir.join("busybox-rootfs.tar");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/make-busybox-rootfs.sh"
    );
    let status = Command::new(script).arg(&out).status().unwrap();
    assert!(status.success(), "the busybox fixture script failed");
    out
}

/// A rootfs with everything a layer must keep: owners, odd modes, hard links, symlinks,
/// xattrs, device nodes, a fifo, long and non-ASCII names, an empty file.
pub fn rich_rootfs() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let entry = |path: &str, kind: EntryType, mode: u32, owner: (u64, u64), data: &[u8]| {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        (h, path.to_string(), data.to_vec())
    };
    let mut entries = vec![
        entry("./", EntryType::Directory, 0o755, (0, 0), b""),
        entry("./etc/", EntryType::Directory, 0o755, (0, 0), b""),
        entry(
            "./etc/shadow",
            EntryType::Regular,
            0o640,
            (0, 42),
            b"root:*:1::::::\n",
        ),
        entry("./home/", EntryType::Directory, 0o755, (0, 0), b""),
        entry(
            "./home/user/",
            EntryType::Directory,
            0o700,
            (1000, 1000),
            b"",
        ),
        entry(
            "./home/user/empty",
            EntryType::Regular,
            0o600,
            (1000, 1000),
            b"",
        ),
        entry("./usr/", EntryType::Directory, 0o755, (0, 0), b""),
        entry("./usr/bin/", EntryType::Directory, 0o755, (0, 0), b""),
        entry(
            "./usr/bin/tool",
            EntryType::Regular,
            0o4755,
            (0, 0),
            b"#!/bin/sh\necho tool\n",
        ),
        entry(
            "./usr/bin/ünïcödé",
            EntryType::Regular,
            0o644,
            (0, 0),
            b"utf-8 name",
        ),
        entry("./tmp/", EntryType::Directory, 0o1777, (0, 0), b""),
    ];
    let long_dir = format!("./usr/share/{}/", "deep-directory-name".repeat(8));
    let long = format!("{long_dir}file");
    entries.push(entry(
        "./usr/share/",
        EntryType::Directory,
        0o755,
        (0, 0),
        b"",
    ));
    entries.push(entry(&long_dir, EntryType::Directory, 0o755, (0, 0), b""));
    entries.push(entry(
        &long,
        EntryType::Regular,
        0o644,
        (0, 0),
        &[7u8; 70_000],
    ));
    for (h, path, data) in entries {
        let mut h = h;
        b.append_data(&mut h, &path, &data[..]).unwrap();
    }
    // A hard link, a symlink, devices, a fifo.
    let blank = || {
        let mut h = Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h
    };
    let mut h = blank();
    h.set_entry_type(EntryType::Link);
    h.set_mode(0o4755);
    b.append_link(&mut h, "./usr/bin/tool-link", "./usr/bin/tool")
        .unwrap();
    let mut h = blank();
    h.set_entry_type(EntryType::Symlink);
    h.set_mode(0o777);
    b.append_link(&mut h, "./usr/bin/sh", "/bin/busybox")
        .unwrap();
    b.append_link(&mut h, "./usr/lib", "../lib").unwrap();
    for (path, kind, major, minor) in [
        ("./dev-null", EntryType::Char, 1, 3),
        ("./dev-loop9", EntryType::Block, 7, 9),
        ("./fifo", EntryType::Fifo, 0, 0),
    ] {
        let mut h = blank();
        h.set_entry_type(kind);
        h.set_mode(0o660);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    }
    // xattrs travel as PAX SCHILY.xattr records before their entry.
    b.append_pax_extensions([
        ("SCHILY.xattr.user.origin", &b"kiln-test"[..]),
        // What `setcap cap_net_raw+ep` writes: VFS_CAP_REVISION_2 | effective, bit 13 permitted.
        (
            "SCHILY.xattr.security.capability",
            &[
                1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ),
    ])
    .unwrap();
    let mut h = blank();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(4);
    b.append_data(&mut h, "./usr/bin/ping", &b"ping"[..])
        .unwrap();
    b.into_inner().unwrap()
}

/// Decompress by magic bytes.
pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

/// Every entry of a tar by normalised path: type, mode, owner, link target, device,
/// xattrs and a digest of the content. mtimes are left out (export need not keep them).
pub fn tree_of(tar_bytes: &[u8]) -> BTreeMap<String, String> {
    let bytes = decompress(tar_bytes);
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&bytes[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = normalise(&e.path_bytes());
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), hex::encode(ext.value_bytes()));
                }
            }
        }
        let h = e.header().clone();
        let kind = h.entry_type();
        let link = match kind {
            EntryType::Link => normalise(&e.link_name_bytes().unwrap()),
            EntryType::Symlink => {
                String::from_utf8_lossy(&e.link_name_bytes().unwrap()).into_owned()
            }
            _ => String::new(),
        };
        let dev = match kind {
            EntryType::Char | EntryType::Block => format!(
                "{}:{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            ),
            _ => String::new(),
        };
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        let value = format!(
            "{kind:?} mode={:o} owner={}:{} link={link} dev={dev} xattrs={xattrs:?} sha256={}",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            hex::encode(Sha256::digest(&content)),
        );
        out.insert(path, value);
    }
    out
}

fn normalise(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let parts: Vec<&str> = s
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// An old-style Docker archive (`docker save` before 25): `<id>/layer.tar`, `<hex>.json`.
pub fn docker_archive(
    config: &serde_json::Value,
    layers: &[(&str, Vec<u8>)],
    tags: &[&str],
) -> Vec<u8> {
    let config_bytes = serde_json::to_vec(config).unwrap();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config_bytes)));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": layers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
    }]);
    let mut files: Vec<(String, Vec<u8>)> = layers
        .iter()
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect();
    files.push((config_name, config_bytes));
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    tar_of_files(&files)
}

/// Every regular file of a tar, in order, as (path, bytes).
pub fn files_of(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != EntryType::Regular {
            continue;
        }
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

pub fn tar_of_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A config for the given layer tars (uncompressed), as docker writes one.
pub fn config_for(layer_tars: &[&[u8]]) -> serde_json::Value {
    let diff_ids: Vec<String> = layer_tars
        .iter()
        .map(|t| format!("sha256:{}", hex::encode(Sha256::digest(t))))
        .collect();
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
}

/// Write raw tar entries whose names the tar crate would refuse to write (`..`, `/abs`).
pub fn raw_tar(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in entries {
        let mut h = Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every file below `dir`, recursively, appended to `out`.
pub fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}
