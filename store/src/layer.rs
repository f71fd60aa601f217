//! Layer archives: `LayerSink` turns an uncompressed tar stream into a compressed blob and its
//! diffID in one pass; `LayerWriter` writes a directory tree as a layer tar, keeping hard
//! links, xattrs, device nodes and overlayfs whiteouts, deterministically when asked.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsStr,
    fs,
    io::{self, Read, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt},
    },
    path::{Path, PathBuf},
};

use tar::{EntryType, Header};

use crate::{
    BlobStore, BlobWriter, Compression, Digest, DigestWriter, Encoder, Error, OverlayXattrs,
    Result, StagedBlob, error::IoContext,
};

/// Write an uncompressed layer tar into it; `finish` gives the staged compressed blob and the
/// diffID (the digest of the uncompressed tar), both hashed as the bytes went by.
pub struct LayerSink {
    inner: DigestWriter<Encoder<BlobWriter>>,
    compression: Compression,
}

#[derive(Debug)]
pub struct StagedLayer {
    pub blob: StagedBlob,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
}

impl StagedLayer {
    pub fn media_type(&self) -> &'static str {
        self.compression.oci_layer_media_type()
    }
}

impl LayerSink {
    pub fn new(store: &BlobStore, compression: Compression) -> Result<LayerSink> {
        let encoder = Encoder::new_parallel(compression, store.writer()?)
            .ctx(|| format!("starting the {} encoder", compression.name()))?;
        Ok(LayerSink {
            inner: DigestWriter::new(encoder),
            compression,
        })
    }

    pub fn finish(self) -> Result<StagedLayer> {
        let (diff_id, uncompressed_size, encoder) = self.inner.finish();
        let blob = encoder
            .finish()
            .ctx(|| format!("finishing the {} stream", self.compression.name()))?
            .finish()?;
        Ok(StagedLayer {
            blob,
            diff_id,
            uncompressed_size,
            compression: self.compression,
        })
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Debug, Default)]
pub struct LayerOptions {
    /// Deterministic mode: every mtime becomes this (from `SOURCE_DATE_EPOCH`).
    pub mtime: Option<u64>,
    /// Translate overlayfs upper-dir markers into OCI whiteouts: a 0/0 character device
    /// becomes `.wh.<name>`, a directory with `trusted.overlay.opaque=y` gets `.wh..wh..opq`.
    pub overlay_whiteouts: bool,
}

impl LayerOptions {
    /// Deterministic when `SOURCE_DATE_EPOCH` is set, as reproducible-builds.org defines it.
    pub fn from_env() -> LayerOptions {
        LayerOptions {
            mtime: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            overlay_whiteouts: false,
        }
    }
}

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Writes a tar of a directory tree; entries sorted by name, parents before children.
pub struct LayerWriter<W: Write> {
    builder: tar::Builder<W>,
    options: LayerOptions,
    /// (device, inode) of multiply-linked files -> the path they were first archived under.
    links: HashMap<(u64, u64), PathBuf>,
    /// Where overlayfs keeps its markers in the trees read with `overlay_whiteouts`.
    overlay_xattrs: OverlayXattrs,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(inner: W, options: LayerOptions) -> LayerWriter<W> {
        LayerWriter {
            builder: tar::Builder::new(inner),
            options,
            links: HashMap::new(),
            overlay_xattrs: OverlayXattrs::default(),
        }
    }

    /// Read opaque markers from this namespace (`user.` for a rootless overlay).
    pub fn with_overlay_xattrs(mut self, overlay_xattrs: OverlayXattrs) -> LayerWriter<W> {
        self.overlay_xattrs = overlay_xattrs;
        self
    }

    /// Archive everything under `root` (not `root` itself), paths relative to it.
    pub fn append_tree(&mut self, root: &Path) -> Result<()> {
        self.append_children(root, Path::new(""))
    }

    fn append_children(&mut self, root: &Path, rel: &Path) -> Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .ctx(|| format!("reading directory {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx(|| format!("reading directory {}", dir.display()))?;
        // Byte order, so the archive does not depend on the filesystem's readdir order.
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let rel = rel.join(&name);
            let full = root.join(&rel);
            let meta =
                fs::symlink_metadata(&full).ctx(|| format!("inspecting {}", full.display()))?;
            let ft = meta.file_type();
            if self.options.overlay_whiteouts && ft.is_char_device() && meta.rdev() == 0 {
                let mut wh = name.clone().into_encoded_bytes();
                wh.splice(0..0, WHITEOUT_PREFIX.bytes());
                let wh_path = rel.with_file_name(
                    String::from_utf8(wh)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                );
                self.append_whiteout(&wh_path, &meta)?;
                continue;
            }
            if ft.is_socket() {
                continue; // sockets cannot be archived; docker skips them too
            }
            self.append_path(&full, &rel, &meta)?;
            if ft.is_dir() {
                if self.options.overlay_whiteouts
                    && xattr::get(&full, self.overlay_xattrs.opaque())
                        .ok()
                        .flatten()
                        .as_deref()
                        == Some(b"y")
                {
                    self.append_whiteout(&rel.join(OPAQUE_WHITEOUT), &meta)?;
                }
                self.append_children(root, &rel)?;
            }
        }
        Ok(())
    }

    fn header_for(&self, meta: &fs::Metadata) -> Header {
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(self.options.mtime.unwrap_or(meta.mtime().max(0) as u64));
        h.set_size(0);
        h
    }

    /// A whiteout entry at `path` (`dir/.wh.NAME` or `dir/.wh..wh..opq`), owned as `meta`.
    pub fn append_whiteout(&mut self, path: &Path, meta: &fs::Metadata) -> Result<()> {
        let mut h = self.header_for(meta);
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        self.builder
            .append_data(&mut h, path, io::empty())
            .ctx(|| format!("archiving whiteout {}", path.display()))
    }

    /// One file system object (not a directory's contents) at `full`, archived as `rel`;
    /// `meta` is its `symlink_metadata`. A file seen before under another name (same
    /// device and inode) becomes a hard link to that name.
    pub fn append_path(&mut self, full: &Path, rel: &Path, meta: &fs::Metadata) -> Result<()> {
        let ft = meta.file_type();
        let mut h = self.header_for(meta);
        let xattrs = read_xattrs(full, self.options.overlay_whiteouts)?;
        if !xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .ctx(|| format!("archiving xattrs of {}", rel.display()))?;
        }
        let ctx = || format!("archiving {}", full.display());
        if ft.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                return self.builder.append_link(&mut h, rel, first).ctx(ctx);
            }
            self.links.insert(key, rel.to_path_buf());
        }
        if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::File::open(full).ctx(ctx)?;
            // Guard against a file that changes size under us: the header said len().
            let mut data = file.take(meta.len());
            self.builder.append_data(&mut h, rel, &mut data).ctx(ctx)
        } else if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            self.builder.append_data(&mut h, rel, io::empty()).ctx(ctx)
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(full).ctx(ctx)?;
            self.builder.append_link(&mut h, rel, target).ctx(ctx)
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            let rdev = meta.rdev();
            h.set_device_major(major(rdev)).ctx(ctx)?;
            h.set_device_minor(minor(rdev)).ctx(ctx)?;
            self.builder.append_data(&mut h, rel, io::empty()).ctx(ctx)
        } else if ft.is_fifo() {
            h.set_entry_type(EntryType::Fifo);
            self.builder.append_data(&mut h, rel, io::empty()).ctx(ctx)
        } else {
            Err(Error::BadTar {
                what: full.display().to_string(),
                detail: "unsupported file type".into(),
            })
        }
    }

    /// Copy an entry of another archive under a new path, keeping its header, xattrs and link.
    pub fn append_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
    ) -> Result<()> {
        let path_str = String::from_utf8_lossy(path).into_owned();
        let ctx = || format!("copying {path_str}");
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions().ctx(ctx)? {
            Some(exts) => exts
                .filter_map(|e| e.ok())
                .filter(|e| e.key_bytes().starts_with(b"SCHILY.xattr."))
                .filter_map(|e| Some((e.key().ok()?.to_string(), e.value_bytes().to_vec())))
                .collect(),
            None => Vec::new(),
        };
        if !xattrs.is_empty() {
            self.builder
                .append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .ctx(ctx)?;
        }
        let mut h = entry.header().clone();
        if let Some(mtime) = self.options.mtime {
            h.set_mtime(mtime);
        }
        let path = Path::new(OsStr::from_bytes(path));
        match h.entry_type() {
            EntryType::Link | EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = Path::new(OsStr::from_bytes(&target)).to_path_buf();
                self.builder.append_link(&mut h, path, target).ctx(ctx)
            }
            _ => self.builder.append_data(&mut h, path, entry).ctx(ctx),
        }
    }

    /// Write the end-of-archive blocks and return the inner writer.
    pub fn finish(self) -> Result<W> {
        self.builder
            .into_inner()
            .ctx(|| "finishing the layer archive".to_string())
    }
}

fn read_xattrs(path: &Path, skip_overlay: bool) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        // Filesystems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(95) => return Ok(out),
        Err(e) => {
            return Err(Error::io(
                format!("listing xattrs of {}", path.display()),
                e,
            ));
        }
    };
    for name in names {
        let Some(name) = name.to_str().map(str::to_string) else {
            continue;
        };
        if skip_overlay && OverlayXattrs::is_overlay_xattr(&name) {
            continue;
        }
        if let Some(value) =
            xattr::get(path, &name).ctx(|| format!("reading xattr {name} of {}", path.display()))?
        {
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

fn minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, os::unix::fs::symlink, process::Command};

    use super::*;

    /// (path, type, mode, link target, xattrs, device) of every entry.
    type Listing = Vec<(
        String,
        EntryType,
        u32,
        String,
        BTreeMap<String, Vec<u8>>,
        (u32, u32),
    )>;

    fn listing(tar: &[u8]) -> Listing {
        let mut out = Vec::new();
        let mut a = tar::Archive::new(tar);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut x = BTreeMap::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        x.insert(k.to_string(), ext.value_bytes().to_vec());
                    }
                }
            }
            let h = e.header();
            out.push((
                e.path().unwrap().display().to_string(),
                h.entry_type(),
                h.mode().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default(),
                x,
                (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                ),
            ));
        }
        out
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("b/deep")).unwrap();
        fs::write(r.join("b/deep/file"), b"content").unwrap();
        fs::hard_link(r.join("b/deep/file"), r.join("a-link")).unwrap();
        symlink("/b/deep/file", r.join("sym")).unwrap();
        fs::write(r.join(format!("long-{}", "x".repeat(150))), b"long").unwrap();
        xattr::set(r.join("b/deep/file"), "user.kiln", b"value").unwrap();
        dir
    }

    #[test]
    fn keeps_hard_links_symlinks_and_xattrs() {
        let dir = tree();
        let mut w = LayerWriter::new(Vec::new(), LayerOptions::default());
        w.append_tree(dir.path()).unwrap();
        let l = listing(&w.finish().unwrap());
        let names: Vec<_> = l.iter().map(|e| e.0.as_str()).collect();
        let long = format!("long-{}", "x".repeat(150));
        // Sorted by name, parents before children.
        assert_eq!(
            names,
            ["a-link", "b", "b/deep", "b/deep/file", long.as_str(), "sym"]
        );
        // The first path archived holds the data; the second is a link to it.
        assert_eq!(l[0].1, EntryType::Regular);
        assert_eq!(l[3].1, EntryType::Link);
        assert_eq!(l[3].3, "a-link");
        assert_eq!(l[5].1, EntryType::Symlink);
        assert_eq!(l[5].3, "/b/deep/file");
        assert_eq!(
            l[0].4.get("user.kiln").map(Vec::as_slice),
            Some(&b"value"[..])
        );
    }

    #[test]
    fn deterministic_mode_gives_identical_bytes() {
        let options = LayerOptions {
            mtime: Some(1_700_000_000),
            overlay_whiteouts: false,
        };
        let a = tree();
        let b = tree();
        let mut wa = LayerWriter::new(Vec::new(), options.clone());
        wa.append_tree(a.path()).unwrap();
        let mut wb = LayerWriter::new(Vec::new(), options);
        wb.append_tree(b.path()).unwrap();
        let (ta, tb) = (wa.finish().unwrap(), wb.finish().unwrap());
        assert_eq!(crate::Digest::of(&ta), crate::Digest::of(&tb));
        let mut archive = tar::Archive::new(&ta[..]);
        for e in archive.entries().unwrap() {
            assert_eq!(e.unwrap().header().mtime().unwrap(), 1_700_000_000);
        }
    }

    fn is_root() -> bool {
        fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    #[test]
    fn device_nodes_fifos_and_overlay_whiteouts() {
        if !is_root() {
            // mknod of devices needs root; CI runs as root, so there this always runs.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the tests as root"
            );
            eprintln!("skipping: device nodes need root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let mknod =
            |args: &[&str]| assert!(Command::new("mknod").args(args).status().unwrap().success());
        mknod(&[r.join("null").to_str().unwrap(), "c", "1", "3"]);
        mknod(&[r.join("loop9").to_str().unwrap(), "b", "7", "9"]);
        mknod(&[r.join("fifo").to_str().unwrap(), "p"]);
        mknod(&[r.join("gone").to_str().unwrap(), "c", "0", "0"]);
        fs::create_dir(r.join("opaque")).unwrap();
        fs::write(r.join("opaque/kept"), b"x").unwrap();
        xattr::set(r.join("opaque"), "trusted.overlay.opaque", b"y").unwrap();

        let mut w = LayerWriter::new(
            Vec::new(),
            LayerOptions {
                mtime: Some(0),
                overlay_whiteouts: true,
            },
        );
        w.append_tree(r).unwrap();
        let l = listing(&w.finish().unwrap());
        let find = |p: &str| {
            l.iter()
                .find(|e| e.0 == p)
                .unwrap_or_else(|| panic!("{p} in {l:?}"))
        };
        assert_eq!(find("null").1, EntryType::Char);
        assert_eq!(find("null").5, (1, 3));
        assert_eq!(find("loop9").1, EntryType::Block);
        assert_eq!(find("loop9").5, (7, 9));
        assert_eq!(find("fifo").1, EntryType::Fifo);
        assert_eq!(find(".wh.gone").1, EntryType::Regular);
        assert!(l.iter().all(|e| e.0 != "gone"));
        assert_eq!(find("opaque/.wh..wh..opq").1, EntryType::Regular);
        assert!(
            find("opaque").4.is_empty(),
            "overlay xattrs are not archived"
        );
        find("opaque/kept");
    }

    #[test]
    fn sink_yields_compressed_digest_and_diff_id_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("b"), dir.path().join("t")).unwrap();
        let tree = tree();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut w = LayerWriter::new(
                LayerSink::new(&store, compression).unwrap(),
                LayerOptions {
                    mtime: Some(0),
                    overlay_whiteouts: false,
                },
            );
            w.append_tree(tree.path()).unwrap();
            let staged = w.finish().unwrap().finish().unwrap();
            // Recompute both digests independently from the staged file.
            let bytes = fs::read(staged.blob.path()).unwrap();
            assert_eq!(crate::Digest::of(&bytes), staged.blob.digest);
            let mut plain = Vec::new();
            crate::decoder(compression, &bytes[..], "t")
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(crate::Digest::of(&plain), staged.diff_id);
            assert_eq!(plain.len() as u64, staged.uncompressed_size);
            if compression == Compression::None {
                assert_eq!(staged.diff_id, staged.blob.digest);
            }
        }
    }
}
