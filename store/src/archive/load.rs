//! `load`: Docker archives (old layer-directory style and Docker 25+), OCI archives, gzip or
//! zstd wrapped. One streaming pass stages every file by content while a thread per layer
//! decompresses it, computes its diffID and checks its paths; then every digest and diffID
//! is checked against the manifests and configs, and only then does anything become visible.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Read},
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread::JoinHandle,
};

use tar::EntryType;

use super::{DockerManifestItem, INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT, REPOSITORIES};
use crate::{
    ChunkSink, Compression, CountingReader, Descriptor, Digest, DigestReader, Error, ImageConfig,
    ImageStore, Index, Manifest, Reference, Result, StagedBlob, check_tar,
    images::{CONFIG_LIMIT, DOCUMENT_LIMIT, set_in_index},
    looks_like_tar,
    media_type::{self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, OCI_CONFIG, OCI_MANIFEST},
    normalise_path, open_tar_stream,
    spec::{self, DocumentKind},
    tar_check::tar_error,
};

const CHUNK: usize = 1 << 20;
/// JSON documents (configs, manifests) are kept in memory while the archive streams by;
/// an archive with more than this of them is refused rather than allowed to grow memory.
const JSON_BUDGET: u64 = 128 << 20;
/// Chunks in flight to a layer's verifier thread: bounds memory at a few MiB per layer.
const CHANNEL_DEPTH: usize = 4;

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

/// What a layer's verifier thread found.
#[derive(Clone, Debug)]
struct LayerFacts {
    /// `None` until the loader fills it in for an uncompressed layer (its blob digest).
    diff_id: Option<Digest>,
    compression: Compression,
}

struct StagedFile {
    digest: Digest,
    size: u64,
    blob: Option<StagedBlob>,
    /// The bytes, for small JSON files (configs, manifests, the archive's own metadata).
    json: Option<Vec<u8>>,
    layer: Option<Result<LayerFacts>>,
}

#[derive(Default)]
struct Contents {
    files: HashMap<String, StagedFile>,
    /// Symlinks and hard links of the archive (old docker saves link repeated layers).
    aliases: HashMap<String, String>,
}

impl Contents {
    fn resolve(&self, path: &str) -> String {
        let mut path = String::from_utf8_lossy(&normalise_path(path.as_bytes())).into_owned();
        for _ in 0..16 {
            match self.aliases.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        path
    }

    fn get(&self, path: &str, named_by: &str, archive: &str) -> Result<&StagedFile> {
        let resolved = self.resolve(path);
        self.files.get(&resolved).ok_or_else(|| Error::MissingFile {
            archive: format!("{archive}: {named_by}"),
            file: path.to_string(),
        })
    }

    fn json(&self, path: &str, named_by: &str, archive: &str) -> Result<&[u8]> {
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
            _ => continue,
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
        let (v, tx) =
            LayerVerifier::spawn(format!("{what}: layer {path}"), compression, pool.returns());
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

/// Decompresses, hashes and path-checks one layer on its own thread, fed by the loader.
struct LayerVerifier {
    handle: JoinHandle<Result<LayerFacts>>,
}

impl LayerVerifier {
    /// The verifier, and the sender that feeds it (dropped by the feeder at the end).
    fn spawn(
        what: String,
        compression: Compression,
        returns: SyncSender<Vec<u8>>,
    ) -> (LayerVerifier, SyncSender<Vec<u8>>) {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let handle = std::thread::spawn(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
                returns,
            };
            // The decoders read straight out of the loader's chunks (BufRead): no copy
            // into a decoder buffer of their own.
            let decoded: Box<dyn Read> = match compression {
                Compression::None => Box::new(reader),
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::with_buffer(reader)
                        .map_err(|e| Error::io(format!("starting zstd decoder for {what}"), e))?,
                ),
            };
            // An uncompressed layer's diffID is its blob digest, which the loader computes
            // anyway: hash here only what the loader cannot see, the decompressed bytes.
            let diff_id = if compression == Compression::None {
                check_tar(decoded, &what)?;
                None
            } else {
                let mut hashed = DigestReader::new(decoded);
                check_tar(&mut hashed, &what)?;
                Some(hashed.finish().0)
            };
            Ok(LayerFacts {
                diff_id,
                compression,
            })
        });
        (LayerVerifier { handle }, tx)
    }

    /// Wait for the verdict; the feeder must have dropped its sender (the staging writer
    /// does when it finishes). A verifier that failed early stopped reading: its error is
    /// the verdict.
    fn finish(self) -> Result<LayerFacts> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::archive("layer", "the layer verifier panicked")))
    }
}

struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Spent chunks go back to the loader's pool.
    returns: SyncSender<Vec<u8>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = io::BufRead::fill_buf(self)?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl io::BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    if spent.capacity() == CHUNK {
                        let _ = self.returns.try_send(spent);
                    }
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]), // sender gone: end of the member
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

/// Chunks recycled between the loader and its verifier threads: no fresh 1 MiB buffer
/// (page faults, zeroing) per MiB moved.
struct ChunkPool {
    tx: SyncSender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl ChunkPool {
    fn new() -> ChunkPool {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH * 2 + 2);
        ChunkPool { tx, rx }
    }

    fn take(&self) -> Vec<u8> {
        let mut chunk = self.rx.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        chunk
    }

    fn returns(&self) -> SyncSender<Vec<u8>> {
        self.tx.clone()
    }
}

/// What will become visible, once everything checked out.
#[derive(Default)]
struct Plan {
    /// archive paths of staged blobs to move into the store
    commit: Vec<String>,
    /// manifests kiln writes itself (for Docker archives without one)
    documents: Vec<Vec<u8>>,
    images: Vec<LoadedImage>,
    warnings: Vec<String>,
}

/// Check a blob named by a descriptor: present at `blobs/sha256/<hex>`, right size, right digest.
fn verify_blob(
    contents: &Contents,
    plan: &mut Plan,
    d: &Descriptor,
    named_by: &str,
    what: &str,
) -> Result<String> {
    let path = format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex());
    let file = contents.get(&path, named_by, what)?;
    if file.digest != d.digest {
        return Err(Error::DigestMismatch {
            what: format!("{what}: {path}"),
            expected: d.digest.clone(),
            actual: file.digest.clone(),
        });
    }
    if file.size != d.size {
        return Err(Error::SizeMismatch {
            what: format!("{what}: {path} (named by {named_by})"),
            expected: d.size,
            actual: file.size,
        });
    }
    let resolved = contents.resolve(&path);
    plan.commit.push(resolved.clone());
    Ok(resolved)
}

/// Check that the layers' diffIDs are the ones the config lists, in order.
fn verify_layers(
    contents: &Contents,
    layer_paths: &[(String, Option<&str>)],
    config: &ImageConfig,
    config_name: &str,
    what: &str,
) -> Result<Vec<LayerFacts>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != layer_paths.len() {
        return Err(Error::BadImage {
            what: format!("{what}: {config_name}"),
            detail: format!(
                "the config lists {} diffIDs for {} layers",
                diff_ids.len(),
                layer_paths.len()
            ),
        });
    }
    let mut out = Vec::new();
    for ((path, declared), expected) in layer_paths.iter().zip(diff_ids) {
        let file = contents.get(path, config_name, what)?;
        let facts = match &file.layer {
            Some(Ok(facts)) => facts.clone(),
            Some(Err(e)) => return Err(clone_error(e)),
            None => {
                return Err(Error::BadImage {
                    what: format!("{what}: {path}"),
                    detail: "this layer is not a tar archive (plain, gzip or zstd)".into(),
                });
            }
        };
        let diff_id = facts
            .diff_id
            .clone()
            .expect("filled in after the verifier finished");
        if &diff_id != expected {
            return Err(Error::DigestMismatch {
                what: format!("{what}: diffID of layer {path}"),
                expected: expected.clone(),
                actual: diff_id,
            });
        }
        if let Some(mt) = declared
            && let Some(c) = Compression::of_layer_media_type(mt)
            && c != facts.compression
        {
            return Err(Error::BadImage {
                what: format!("{what}: {path}"),
                detail: format!(
                    "declared as {mt} but its content is {}",
                    facts.compression.name()
                ),
            });
        }
        out.push(facts);
    }
    Ok(out)
}

/// Errors are not Clone (io::Error); a verifier's error is reported once, so rebuild it.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::UnsafePath {
            archive,
            path,
            reason,
        } => Error::UnsafePath {
            archive: archive.clone(),
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Truncated { what, detail } => Error::Truncated {
            what: what.clone(),
            detail: detail.clone(),
        },
        Error::BadTar { what, detail } => Error::BadTar {
            what: what.clone(),
            detail: detail.clone(),
        },
        other => Error::archive("layer", other.to_string()),
    }
}

fn plan_oci(contents: &mut Contents, plan: &mut Plan, what: &str) -> Result<()> {
    let index: Index = spec::from_json(
        contents.json(INDEX_JSON, "the archive", what)?,
        &format!("{what}: index.json"),
    )?;
    // Docker archives carry RepoTags beside the index: a fallback for bare ref.name tags.
    let docker_tags = docker_tags_by_config(contents, what);
    for top in &index.manifests {
        let config = verify_document(contents, plan, top, "index.json", what, 0)?;
        let name = top
            .annotation(ANNOTATION_CONTAINERD_NAME)
            .or(top.annotation(ANNOTATION_REF_NAME));
        let mut references = Vec::new();
        match name {
            Some(n) if n.contains(['/', ':']) => references.push(Reference::parse(n)?),
            Some(tag) => match config.as_ref().and_then(|c| docker_tags.get(c)) {
                Some(tags) => references.extend(tags.iter().cloned()),
                None => plan.warnings.push(format!(
                    "{} is named only {tag:?}, not a full image name: loaded untagged",
                    top.digest
                )),
            },
            None => {
                if let Some(tags) = config.as_ref().and_then(|c| docker_tags.get(c)) {
                    references.extend(tags.iter().cloned());
                }
            }
        }
        let id = config.unwrap_or_else(|| top.digest.clone());
        push_images(plan, references, top, id);
    }
    Ok(())
}

fn push_images(plan: &mut Plan, references: Vec<Reference>, top: &Descriptor, id: Digest) {
    let top = Descriptor::new(&top.media_type, top.digest.clone(), top.size);
    if references.is_empty() {
        plan.images.push(LoadedImage {
            reference: None,
            descriptor: top,
            id,
        });
        return;
    }
    for reference in references {
        plan.images.push(LoadedImage {
            reference: Some(reference),
            descriptor: top.clone(),
            id: id.clone(),
        });
    }
}

fn docker_tags_by_config(contents: &Contents, what: &str) -> HashMap<Digest, Vec<Reference>> {
    let mut out: HashMap<Digest, Vec<Reference>> = HashMap::new();
    let Ok(bytes) = contents.json(MANIFEST_JSON, "the archive", what) else {
        return out;
    };
    let Ok(items) = serde_json::from_slice::<Vec<DockerManifestItem>>(bytes) else {
        return out;
    };
    for item in items {
        if let Ok(file) = contents.get(&item.config, MANIFEST_JSON, what) {
            let refs = item
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            out.insert(file.digest.clone(), refs);
        }
    }
    out
}

/// Verify a manifest or index and everything under it. Returns the config digest of the
/// image (for an index, of the host platform's image when there is one).
fn verify_document(
    contents: &Contents,
    plan: &mut Plan,
    d: &Descriptor,
    named_by: &str,
    what: &str,
    depth: usize,
) -> Result<Option<Digest>> {
    if depth > 8 {
        return Err(Error::archive(what, "indexes nest more than 8 deep"));
    }
    let path = verify_blob(contents, plan, d, named_by, what)?;
    let bytes = contents.json(&path, named_by, what)?;
    let doc_name = format!("{what}: manifest {}", d.digest);
    match spec::document_kind(bytes, Some(&d.media_type), &doc_name)? {
        DocumentKind::Manifest => {
            let m: Manifest = spec::from_json(bytes, &doc_name)?;
            let manifest_name = format!("manifest {}", d.digest);
            let config_path = verify_blob(contents, plan, &m.config, &manifest_name, what)?;
            let config: ImageConfig = spec::from_json(
                contents.json(&config_path, &manifest_name, what)?,
                &format!("{what}: config {}", m.config.digest),
            )?;
            let mut layer_paths = Vec::new();
            for layer in &m.layers {
                let p = verify_blob(contents, plan, layer, &manifest_name, what)?;
                layer_paths.push((p, Some(layer.media_type.as_str())));
            }
            verify_layers(
                contents,
                &layer_paths,
                &config,
                &format!("config {}", m.config.digest),
                what,
            )?;
            Ok(Some(m.config.digest))
        }
        DocumentKind::Index => {
            let index: Index = spec::from_json(bytes, &doc_name)?;
            let index_name = format!("index {}", d.digest);
            let host = crate::Platform::host();
            let mut chosen = None;
            let mut present = 0;
            for child in &index.manifests {
                // An index may list platforms whose blobs were not saved; skip those.
                let child_path = format!("blobs/sha256/{}", child.digest.hex());
                if !contents.files.contains_key(&contents.resolve(&child_path)) {
                    continue;
                }
                present += 1;
                let id = verify_document(contents, plan, child, &index_name, what, depth + 1)?;
                let is_host = child.platform.as_ref().is_some_and(|p| p.matches(&host));
                if is_host || chosen.is_none() {
                    chosen = id.or(chosen);
                }
            }
            if present == 0 && !index.manifests.is_empty() {
                return Err(Error::MissingFile {
                    archive: format!("{what}: {index_name}"),
                    file: format!("blobs/sha256/{}", index.manifests[0].digest.hex()),
                });
            }
            Ok(chosen)
        }
    }
}

fn plan_docker(contents: &mut Contents, plan: &mut Plan, what: &str) -> Result<()> {
    let items: Vec<DockerManifestItem> = spec::from_json(
        contents.json(MANIFEST_JSON, "the archive", what)?,
        &format!("{what}: manifest.json"),
    )?;
    if items.is_empty() {
        return Err(Error::archive(what, "manifest.json lists no images"));
    }
    for item in items {
        let config_file = contents.get(&item.config, MANIFEST_JSON, what)?;
        check_name_digest(&item.config, &config_file.digest, what)?;
        let config_path = contents.resolve(&item.config);
        let config_bytes = contents.json(&item.config, MANIFEST_JSON, what)?;
        let config_digest = config_file.digest.clone();
        let config: ImageConfig =
            spec::from_json(config_bytes, &format!("{what}: {}", item.config))?;
        plan.commit.push(config_path);

        let mut layer_paths = Vec::new();
        for layer in &item.layers {
            let file = contents.get(layer, MANIFEST_JSON, what)?;
            check_name_digest(layer, &file.digest, what)?;
            layer_paths.push((contents.resolve(layer), None));
        }
        let facts = verify_layers(contents, &layer_paths, &config, &item.config, what)?;

        let mut layers = Vec::new();
        for ((path, _), facts) in layer_paths.iter().zip(&facts) {
            let file = &contents.files[path];
            layers.push(Descriptor::new(
                facts.compression.oci_layer_media_type(),
                file.digest.clone(),
                file.size,
            ));
            plan.commit.push(path.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
            layers,
            subject: None,
            annotations: None,
        };
        let bytes = spec::to_json(&manifest);
        let top = Descriptor::new(OCI_MANIFEST, Digest::of(&bytes), bytes.len() as u64);
        plan.documents.push(bytes);
        let mut references = Vec::new();
        for tag in item.repo_tags.unwrap_or_default() {
            references.push(Reference::parse(&tag)?);
        }
        push_images(plan, references, &top, config_digest);
    }
    Ok(())
}

/// Files named after a digest (`<hex>.json`, `<hex>.tar`, `blobs/sha256/<hex>`) must hold it.
fn check_name_digest(path: &str, digest: &Digest, what: &str) -> Result<()> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name
        .strip_suffix(".json")
        .or(name.strip_suffix(".tar"))
        .unwrap_or(name);
    let by_blob_path = path.contains("blobs/sha256/");
    let named = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit());
    // Old docker saves name layers <v1-id>/layer.tar: v1 ids are not content digests.
    if (named && name != "layer.tar") || by_blob_path {
        let claimed = Digest::from_hex(stem)?;
        if &claimed != digest {
            return Err(Error::DigestMismatch {
                what: format!("{what}: {path}"),
                expected: claimed,
                actual: digest.clone(),
            });
        }
    }
    Ok(())
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
    let _ = media_type::OCI_INDEX; // (kept for readers: index.json entries keep their types)
    Ok(LoadReport {
        images: plan.images,
        warnings: plan.warnings,
    })
}
