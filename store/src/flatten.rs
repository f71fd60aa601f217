//! `export_flat`: the filesystem an image's layers add up to, as one tar, with whiteouts
//! applied (what `docker export` gives for a fresh container).
//!
//! Two passes over the layers, never unpacking to disk: top-down to decide which entry of
//! which layer is visible at each path, then bottom-up to copy exactly those, so parents
//! come before children and hard-link targets before their links.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{BufReader, Read, Write},
};

use tar::EntryType;

use crate::{
    Image, ImageStore, LayerOptions, LayerWriter, OPAQUE_WHITEOUT, Result, WHITEOUT_PREFIX,
    normalise_path, open_tar_stream, tar_check::tar_error,
};

/// (layer index from the bottom, ordinal of the entry in that layer)
type Slot = (usize, u64);

#[derive(Default)]
struct Visibility {
    /// path -> the entry that shows there, and whether it is a directory
    winners: HashMap<Vec<u8>, (Slot, bool)>,
    deleted: HashSet<Vec<u8>>,
    opaque: HashSet<Vec<u8>>,
}

impl Visibility {
    fn hidden(&self, path: &[u8], layer: usize) -> bool {
        if self.deleted.contains(path) {
            return true;
        }
        if let Some(((l, _), _)) = self.winners.get(path)
            && *l != layer
        {
            return true;
        }
        ancestors(path).any(|a| {
            self.deleted.contains(a)
                || self.opaque.contains(a)
                || self
                    .winners
                    .get(a)
                    .is_some_and(|((l, _), is_dir)| *l != layer && !is_dir)
        })
    }
}

fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

fn split_whiteout(path: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    if name == OPAQUE_WHITEOUT.as_bytes() {
        return Some((dir.to_vec(), None));
    }
    let hidden = name.strip_prefix(WHITEOUT_PREFIX.as_bytes())?;
    let mut target = dir.to_vec();
    if !target.is_empty() {
        target.push(b'/');
    }
    target.extend_from_slice(hidden);
    Some((dir.to_vec(), Some(target)))
}

fn open_layer(
    store: &ImageStore,
    image: &Image,
    i: usize,
) -> Result<(String, Box<dyn Read + Send>)> {
    let layer = &image.manifest.layers[i];
    let what = format!("layer {}", layer.digest);
    let file: File = store.blobs().open_blob(&layer.digest)?;
    let (_, reader) = open_tar_stream(BufReader::with_capacity(1 << 20, file), &what)?;
    Ok((what, reader))
}

pub fn export_flat<W: Write>(store: &ImageStore, image: &Image, out: W) -> Result<W> {
    let layers = image.manifest.layers.len();
    let mut vis = Visibility::default();
    for i in (0..layers).rev() {
        let (what, reader) = open_layer(store, image, i)?;
        let mut archive = tar::Archive::new(reader);
        let (mut deleted, mut opaque) = (Vec::new(), Vec::new());
        for (ordinal, entry) in archive
            .entries()
            .map_err(|e| tar_error(&what, e))?
            .enumerate()
        {
            let entry = entry.map_err(|e| tar_error(&what, e))?;
            let path = normalise_path(&entry.path_bytes());
            if let Some((dir, target)) = split_whiteout(&path) {
                match target {
                    Some(target) => deleted.push(target),
                    None => opaque.push(dir),
                }
                continue;
            }
            if vis.hidden(&path, i) {
                continue;
            }
            let is_dir = entry.header().entry_type() == EntryType::Directory;
            // Within one layer a later entry for the same path replaces the earlier one.
            vis.winners.insert(path, ((i, ordinal as u64), is_dir));
        }
        vis.deleted.extend(deleted);
        vis.opaque.extend(opaque);
    }

    let mut writer = LayerWriter::new(out, LayerOptions::default());
    for i in 0..layers {
        let (what, reader) = open_layer(store, image, i)?;
        let mut archive = tar::Archive::new(reader);
        for (ordinal, entry) in archive
            .entries()
            .map_err(|e| tar_error(&what, e))?
            .enumerate()
        {
            let mut entry = entry.map_err(|e| tar_error(&what, e))?;
            let path = normalise_path(&entry.path_bytes());
            let shown = vis
                .winners
                .get(&path)
                .is_some_and(|(slot, _)| *slot == (i, ordinal as u64));
            if shown {
                let raw = entry.path_bytes().into_owned();
                writer.append_entry(&mut entry, &raw)?;
            }
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::{
        Compression, Descriptor, Digest, ImageConfig, LayerSink, Manifest, RootFs, media_type, spec,
    };

    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    fn layer(store: &ImageStore, entries: &[E]) -> (Descriptor, Digest) {
        let mut b = tar::Builder::new(LayerSink::new(store.blobs(), Compression::Gzip).unwrap());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            match *e {
                E::Dir(p) => {
                    h.set_entry_type(EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
                E::File(p, content) => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(content.len() as u64);
                    b.append_data(&mut h, p, content.as_bytes()).unwrap();
                }
                E::Hard(p, target) => {
                    h.set_entry_type(EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, p, target).unwrap();
                }
            }
        }
        let staged = b.into_inner().unwrap().finish().unwrap();
        let d = Descriptor::new(
            staged.media_type(),
            staged.blob.digest.clone(),
            staged.blob.size,
        );
        let diff = staged.diff_id.clone();
        staged.blob.commit(store.blobs(), None).unwrap();
        (d, diff)
    }

    #[test]
    fn applies_whiteouts_opaque_dirs_and_replacements() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let layers = [
            layer(
                &store,
                &[
                    E::Dir("a"),
                    E::File("a/f1", "1"),
                    E::File("a/f2", "2"),
                    E::Dir("d"),
                    E::File("d/x", "x"),
                    E::Dir("d/sub"),
                    E::File("d/sub/y", "y"),
                    E::Dir("e"),
                    E::File("e/child", "c"),
                    E::File("g", "g"),
                    E::Hard("h", "g"),
                    E::File("w", "old"),
                ],
            ),
            layer(
                &store,
                &[
                    E::File("a/.wh.f1", ""),
                    E::File("d/.wh..wh..opq", ""),
                    E::File("d/new", "n"),
                    E::File("z", "z"),
                    E::File("w", "new"),
                ],
            ),
            layer(&store, &[E::File("e", "now a file"), E::File(".wh.z", "")]),
        ];
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
        let image = store.image(&top).unwrap();

        let mut out = Vec::new();
        export_flat(&store, &image, &mut out).unwrap();
        out.flush().unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut content = String::new();
            if e.header().entry_type() == EntryType::Link {
                content = format!("-> {}", e.link_name().unwrap().unwrap().display());
            } else {
                std::io::Read::read_to_string(&mut e, &mut content).unwrap();
            }
            seen.push(format!("{path}={content}"));
        }
        assert_eq!(
            seen,
            [
                "a=",
                "a/f2=2",
                "d=",
                "g=g",
                "h=-> g",
                "d/new=n",
                "w=new",
                "e=now a file"
            ],
        );
    }
}
