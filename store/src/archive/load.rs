//! `load`: Docker archives (old layer-directory style and Docker 25+), OCI archives, gzip or
//! zstd wrapped. One streaming pass stages every file by content while a thread per layer
//! decompresses it, computes its diffID and checks its paths; then every digest and diffID
//! is checked against the manifests and configs, and only then does anything become visible.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Read},
};

use tar::EntryType;

use super::{
    INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT, REPOSITORIES,
    plan::{Plan, plan_docker, plan_oci},
};
use crate::{
    ChunkSink, Compression, CountingReader, Descriptor, Digest, Error, ImageStore, Reference,
    Result, StagedBlob,
    images::{CONFIG_LIMIT, DOCUMENT_LIMIT, set_in_index},
    layer_check::{ChunkPool, LayerFacts, LayerVerifier},
    looks_like_tar, normalise_path, open_tar_stream,
    tar_check::tar_error,
};

/// JSON documents (configs, manifests) are kept in memory while the archive streams by;
/// an archive with more than this of them is refused rather than allowed to grow memory.
const JSON_BUDGET: u64 = 128 << 20;

#[derive(Debug)]
pub struct LoadedImage {
    pub reference: Option<Reference>,
    pub descriptor: Descriptor,
    /// The config digest (docker's image ID).
    pub id: Digest,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub images: Vec<LoadedImage>,
    pub warnings: Vec<String>,
}

pub fn load<R: Read + Send>(store: &ImageStore, input: R, what: &str) -> Result<LoadReport> {
    let _gc = store.gc_lock(false)?;
    let (_, reader) = open_tar_stream(input, what)?;
    let mut contents = read_archive(store, reader, what)?;
    let mut plan = Plan::default();
    if contents.files.contains_key(INDEX_JSON) {
        plan_oci(&mut contents, &mut plan, what)?;
    } else if contents.files.contains_key(MANIFEST_JSON) {
        plan_docker(&mut contents, &mut plan, what)?;
    } else {
        return Err(Error::archive(
            what,
            "neither manifest.json (Docker archive) nor index.json (OCI layout) is in it",
        ));
    }
    commit(store, contents, plan)
}

pub(super) struct StagedFile {
    pub digest: Digest,
    pub size: u64,
    blob: Option<StagedBlob>,
    /// The bytes, for small JSON files (configs, manifests, the archive's own metadata).
    pub json: Option<Vec<u8>>,
    pub layer: Option<Result<LayerFacts>>,
}

#[derive(Default)]
pub(super) struct Contents {
    pub files: HashMap<String, StagedFile>,
    /// Symlinks and hard links of the archive (old docker saves link repeated layers).
    aliases: HashMap<String, String>,
    /// Entries that are neither files nor links (directories, devices, FIFOs), by kind.
    others: HashMap<String, EntryType>,
}

impl Contents {
    pub(super) fn resolve(&self, path: &str) -> String {
        let mut path = String::from_utf8_lossy(&normalise_path(path.as_bytes())).into_owned();
        for _ in 0..16 {
            match self.aliases.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        path
    }

    pub(super) fn get(&self, path: &str, named_by: &str, archive: &str) -> Result<&StagedFile> {
        let resolved = self.resolve(path);
        if let Some(file) = self.files.get(&resolved) {
            return Ok(file);
        }
        let normalised = String::from_utf8_lossy(&normalise_path(path.as_bytes())).into_owned();
        if self.aliases.contains_key(&normalised) {
            // The archive has the path, as a link: say where the link leads instead.
            let detail = if self.aliases.contains_key(&resolved) {
                format!("{path} (named by {named_by}) is a link in a loop of links")
            } else {
                format!(
                    "{path} (named by {named_by}) is a link to {resolved}, which the archive \
                     does not contain"
                )
            };
            return Err(Error::archive(archive, detail));
        }
        if let Some(kind) = self.others.get(&resolved) {
            return Err(Error::archive(
                archive,
                format!("{path} (named by {named_by}) is a {kind:?} entry, not a file"),
            ));
        }
        Err(Error::MissingFile {
            archive: format!("{archive}: {named_by}"),
            file: path.to_string(),
        })
    }

    pub(super) fn json(&self, path: &str, named_by: &str, archive: &str) -> Result<&[u8]> {
        let file = self.get(path, named_by, archive)?;
        file.json.as_deref().ok_or_else(|| {
            Error::archive(
                archive,
                format!("{path} (named by {named_by}) is not a JSON document"),
            )
        })
    }
}

fn read_archive<R: Read>(store: &ImageStore, reader: R, what: &str) -> Result<Contents> {
    let mut contents = Contents::default();
    let pool = ChunkPool::new();
    let mut archive = tar::Archive::new(CountingReader::new(reader));
    let mut next_header = 0u64;
    let mut count = 0u64;
    let mut verifiers: Vec<(String, LayerVerifier)> = Vec::new();
    let mut json_kept = 0u64;
    for entry in archive.entries().map_err(|e| tar_error(what, e))? {
        let mut entry = entry.map_err(|e| tar_error(what, e))?;
        count += 1;
        let size = entry.size();
        next_header = entry.raw_file_position() + size.div_ceil(512) * 512;
        let path = String::from_utf8_lossy(&normalise_path(&entry.path_bytes())).into_owned();
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {}
            EntryType::Symlink | EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = if entry.header().entry_type() == EntryType::Symlink {
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    join_lexically(dir, &String::from_utf8_lossy(&target))
                } else {
                    String::from_utf8_lossy(&normalise_path(&target)).into_owned()
                };
                contents.aliases.insert(path, target);
                continue;
            }
            kind => {
                contents.others.insert(path, kind);
                continue;
            }
        }
        let metadata = matches!(
            path.as_str(),
            MANIFEST_JSON | INDEX_JSON | OCI_LAYOUT | REPOSITORIES
        );
        let staged = if metadata {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(DOCUMENT_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| tar_error(what, e))?;
            if bytes.len() as u64 > DOCUMENT_LIMIT {
                return Err(Error::archive(
                    what,
                    format!("{path} is over {DOCUMENT_LIMIT} bytes"),
                ));
            }
            check_length(what, &path, size, bytes.len() as u64)?;
            StagedFile {
                digest: Digest::of(&bytes),
                size,
                blob: None,
                json: Some(bytes),
                layer: None,
            }
        } else {
            let (file, verifier) = stage(store, &pool, &mut entry, &path, size, what)?;
            if let Some(v) = verifier {
                verifiers.push((path.clone(), v));
            }
            json_kept += file.json.as_ref().map_or(0, |j| j.len() as u64);
            if json_kept > JSON_BUDGET {
                return Err(Error::archive(
                    what,
                    format!(
                        "it holds more than {} MiB of JSON documents",
                        JSON_BUDGET >> 20
                    ),
                ));
            }
            file
        };
        contents.files.insert(path, staged);
    }
    let mut inner = archive.into_inner();
    if inner.count() < next_header + 512 {
        return Err(Error::Truncated {
            what: what.to_string(),
            detail: format!("no end-of-archive marker after {count} entries"),
        });
    }
    io::copy(&mut inner, &mut io::sink()).map_err(|e| tar_error(what, e))?;
    for (path, verifier) in verifiers {
        let facts = verifier.finish();
        if let Some(file) = contents.files.get_mut(&path) {
            file.layer = Some(facts.map(|mut f| {
                f.diff_id.get_or_insert_with(|| file.digest.clone());
                f
            }));
        }
    }
    Ok(contents)
}

fn check_length(what: &str, path: &str, expected: u64, actual: u64) -> Result<()> {
    if expected != actual {
        return Err(Error::Truncated {
            what: what.to_string(),
            detail: format!("{path} should hold {expected} bytes, the archive ends after {actual}"),
        });
    }
    Ok(())
}

/// Copy one archive member into a staging blob; start a verifier if it looks like a layer.
/// Three stages, each owning a chunk in turn: this thread reads and hashes, the staging
/// writer copies into the file, the verifier (layers only) decompresses and checks.
fn stage<R: Read>(
    store: &ImageStore,
    pool: &ChunkPool,
    entry: &mut R,
    path: &str,
    size: u64,
    what: &str,
) -> Result<(StagedFile, Option<LayerVerifier>)> {
    let mut first = pool.take();
    let n = read_full(entry, &mut first).map_err(|e| tar_error(what, e))?;
    first.truncate(n);
    let is_layer =
        n > 0 && (Compression::from_magic(&first) != Compression::None || looks_like_tar(&first));
    let mut json =
        (!is_layer && size <= CONFIG_LIMIT && first.trim_ascii_start().starts_with(b"{"))
            .then(|| Vec::with_capacity(size as usize));
    let (verifier, next) = if is_layer {
        let compression = Compression::from_magic(&first);
        let (v, tx) = LayerVerifier::spawn(
            format!("{what}: layer {path}"),
            Some(compression),
            Some(pool.returns()),
        );
        (Some(v), ChunkSink::Next(tx))
    } else {
        (None, ChunkSink::Pool(pool.returns()))
    };
    let mut writer = store.blobs().chunk_writer(next)?;
    let mut total = 0u64;
    let mut chunk = first;
    while !chunk.is_empty() {
        total += chunk.len() as u64;
        if let Some(json) = json.as_mut() {
            json.extend_from_slice(&chunk);
        }
        writer.write_chunk(chunk)?;
        chunk = pool.take();
        let n = read_full(entry, &mut chunk).map_err(|e| tar_error(what, e))?;
        chunk.truncate(n);
    }
    check_length(what, path, size, total)?;
    let blob = writer.finish()?;
    Ok((
        StagedFile {
            digest: blob.digest.clone(),
            size: blob.size,
            blob: Some(blob),
            json,
            layer: None,
        },
        verifier,
    ))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn join_lexically(dir: &str, target: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{dir}/{target}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn commit(store: &ImageStore, mut contents: Contents, plan: Plan) -> Result<LoadReport> {
    let mut done = HashSet::new();
    for path in &plan.commit {
        if !done.insert(path.clone()) {
            continue;
        }
        let file = contents
            .files
            .get_mut(path)
            .expect("planned paths were looked up");
        if let Some(blob) = file.blob.take() {
            blob.commit(store.blobs(), Some(&file.digest))?;
        } else if let Some(bytes) = &file.json {
            store.blobs().put_bytes(bytes)?;
        }
    }
    for doc in &plan.documents {
        store.blobs().put_bytes(doc)?;
    }
    store.layout().update_index(|index| {
        for image in &plan.images {
            set_in_index(index, image.reference.as_ref(), &image.descriptor);
        }
        Ok(())
    })?;
    Ok(LoadReport {
        images: plan.images,
        warnings: plan.warnings,
    })
}
