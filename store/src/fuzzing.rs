//! Entry points that drive the store's readers of outside bytes (layers, image archives,
//! references, digests) with arbitrary input and assert what must hold whatever the input,
//! for the fuzz targets in `fuzz/` and for the tests that replay their corpora on stable.
//! A broken invariant panics: that is what the fuzzer reports.

use std::{io::Write, mem::discriminant};

use crate::{
    Compression, Descriptor, Digest, ImageLayout, ImageStore, LayerCheck, Reference, Result,
    archive::{self, LoadReport},
    check_layer, check_layer_blob, check_tar,
    images::{CONFIG_LIMIT, DOCUMENT_LIMIT},
    looks_like_tar,
    spec::{self, DocumentKind, ImageConfig, Index, Manifest},
    validate_repository_name, validate_tag,
};

/// Names the input in errors (and nothing else).
const WHAT: &str = "fuzz input";

// ---------------------------------------------------------------------------------------
// Layers

/// One layer blob, as pull, copy and load check it. The same verdict whether the blob is
/// read whole or fed in pieces; and the input taken as a plain tar gets the same verdict
/// from `check_tar` as its gzip and zstd compressions get from the layer check, which
/// then finds the plain bytes' digest as the diffID.
/// The committed corpus of a fuzz target (`fuzz/corpus/<target>/`), for the stable tests
/// that replay it.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Feed every input of `target`'s corpus to `run` (which panics on a broken invariant);
/// how many there were.
pub fn replay_corpus(target: &str, run: impl Fn(&[u8])) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir(target)).expect("the corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        eprintln!("{}", path.display());
        run(&data);
        count += 1;
    }
    count
}

pub fn layer(data: &[u8]) {
    let whole = check_layer_blob(data, WHAT);
    let piece = 1 + usize::from(data.first().copied().unwrap_or(0)) * 61;
    let mut fed = LayerCheck::start(WHAT);
    for p in data.chunks(piece) {
        fed.feed(p.to_vec());
    }
    let fed = fed.finish();
    same_verdict(&whole, &fed, "read whole / fed in pieces");
    if let (Ok(a), Ok(b)) = (&whole, &fed) {
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(a.compression, b.compression);
    }
    if let Ok(facts) = &whole {
        let blob = Digest::of(data);
        let declared = facts.compression.oci_layer_media_type();
        check_layer("l", facts, &blob, &facts.diff_id_of(&blob), Some(declared))
            .expect("a layer agrees with its own facts");
    }

    let plain = check_tar(data, WHAT);
    if let Ok(summary) = &plain {
        assert_eq!(
            summary.size,
            data.len() as u64,
            "check_tar reads to the end"
        );
    }
    let sniffed = &data[..data.len().min(512)];
    if Compression::from_magic(sniffed) == Compression::None && looks_like_tar(sniffed) {
        same_verdict(&plain, &whole, "check_tar / layer check of a plain tar");
    }
    for compression in [Compression::Gzip, Compression::Zstd] {
        let facts = check_layer_blob(&compress(compression, data)[..], WHAT);
        same_verdict(&plain, &facts, compression.name());
        if let Ok(facts) = facts {
            assert_eq!(facts.compression, compression);
            assert_eq!(facts.diff_id, Some(Digest::of(data)));
        }
    }
}

fn same_verdict<A, B>(a: &Result<A>, b: &Result<B>, what: &str) {
    match (a, b) {
        (Ok(_), Ok(_)) => {}
        (Err(x), Err(y)) => assert_eq!(
            discriminant(x),
            discriminant(y),
            "{what}: different errors: {x} / {y}"
        ),
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => panic!("{what}: one accepts, one refuses: {e}"),
    }
}

fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
    match compression {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory")
        }
        Compression::Zstd => zstd::encode_all(data, 1).expect("in memory"),
        Compression::None => data.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// Image archives

/// An image tarball through `load` (Docker and OCI archives) and `unpack_layout`
/// (`oci-archive:`), each into an empty store of its own. A refused archive leaves the
/// store as it was; an accepted one leaves every document it names readable, with
/// everything that document names in turn.
///
/// Arbitrary bytes rarely get past the digests an archive is checked against, so the
/// input is usually a recipe (see [`ArchiveRecipe`]): the archive built from it has the
/// digests right, and the fuzzer works on the documents. A first byte `R` takes the rest
/// as the archive itself.
pub fn archive(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode == b'R' {
        rest.to_vec()
    } else {
        ArchiveRecipe::build(rest, mode == b'G')
    };
    let dir = tempfile::Builder::new()
        .prefix("kiln-fuzz-")
        .tempdir()
        .expect("a scratch directory");

    let store = ImageStore::open(dir.path().join("store")).expect("a scratch store");
    match archive::load(&store, &bytes[..], WHAT) {
        Ok(report) => check_loaded(&store, &report),
        Err(e) => {
            assert!(
                store.entries().unwrap().is_empty(),
                "refused ({e}), yet tagged"
            );
            assert!(
                store.blobs().list().unwrap().is_empty(),
                "refused ({e}), yet stored"
            );
        }
    }

    let layout = ImageLayout::create(dir.path().join("layout"), dir.path().join("state"))
        .expect("a scratch layout");
    match archive::unpack_layout(&layout, &bytes[..], WHAT) {
        Ok(()) => {
            for d in layout.index().unwrap().manifests {
                assert!(
                    layout.blobs().contains(&d.digest),
                    "index names a missing {d:?}"
                );
            }
        }
        Err(e) => assert!(
            layout.index().unwrap().manifests.is_empty(),
            "refused ({e})"
        ),
    }
}

fn check_loaded(store: &ImageStore, report: &LoadReport) {
    for image in &report.images {
        let config = walk(store, &image.descriptor, 0);
        if let Some(config) = config {
            assert_eq!(image.id, config, "the image ID is its config digest");
        }
        if let Some(reference) = &image.reference {
            store
                .resolve(&reference.to_string())
                .expect("a loaded name resolves");
        }
    }
}

/// Everything under a loaded document is in the store; the config digest of a manifest.
fn walk(store: &ImageStore, d: &Descriptor, depth: usize) -> Option<Digest> {
    assert!(depth <= 9, "the loader allows 8 levels of indexes");
    let bytes = store
        .blobs()
        .read_verified(&d.digest, DOCUMENT_LIMIT)
        .expect("a loaded document is readable");
    let what = d.digest.to_string();
    match spec::document_kind(&bytes, Some(&d.media_type), &what).expect("a loaded document") {
        DocumentKind::Manifest => {
            let m: Manifest = spec::from_json(&bytes, &what).expect("a loaded manifest");
            let config = store
                .blobs()
                .read_verified(&m.config.digest, CONFIG_LIMIT)
                .expect("a loaded config is readable");
            let config: ImageConfig = spec::from_json(&config, &what).expect("a loaded config");
            assert_eq!(config.rootfs.diff_ids.len(), m.layers.len());
            for layer in &m.layers {
                assert!(store.blobs().contains(&layer.digest), "layer {layer:?}");
                assert_eq!(store.blobs().size(&layer.digest).unwrap(), layer.size);
            }
            Some(m.config.digest)
        }
        DocumentKind::Index => {
            let index: Index = spec::from_json(&bytes, &what).expect("a loaded index");
            for child in &index.manifests {
                // An index may name platforms the archive did not carry.
                if store.blobs().contains(&child.digest) {
                    walk(store, child, depth + 1);
                }
            }
            None
        }
    }
}

/// A recipe for an image tarball: records `[kind][length: u16 big-endian][body]`, each an
/// entry of the archive, in order. Kinds:
///
/// - `m` `manifest.json`, `i` `index.json`, `r` `repositories`, `o` `oci-layout`
/// - `b` a blob at `blobs/sha256/<its digest>`; `z` the same, gzip-compressed
/// - `j` a Docker config at `<its hex>.json`; `l` an old-style layer at `<n>/layer.tar`
/// - `f` a file `name\0content`; `s` a symlink and `h` a hard link `name\0target`;
///   `d` a directory `name`
///
/// In bodies, `@dN`, `@hN` and `@sN` (N one digit) stand for the digest, hex digest and
/// size of the N-th content record before it (b, z, j, l, f): documents can name blobs.
pub struct ArchiveRecipe;

impl ArchiveRecipe {
    /// The archive a recipe describes (whole-tar gzip when asked).
    pub fn build(mut recipe: &[u8], gzip: bool) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut contents: Vec<Vec<u8>> = Vec::new();
        let mut entries = 0;
        while let Some((&kind, tail)) = recipe.split_first()
            && tail.len() >= 2
            && entries < 64
        {
            let len = usize::from(u16::from_be_bytes([tail[0], tail[1]]));
            let body = &tail[2..][..len.min(tail.len() - 2)];
            recipe = &tail[2 + body.len()..];
            let body = substitute(body, &contents);
            entries += 1;
            let (name, content, link) = match kind {
                b'm' => ("manifest.json".to_string(), body, None),
                b'i' => ("index.json".to_string(), body, None),
                b'r' => ("repositories".to_string(), body, None),
                b'o' => ("oci-layout".to_string(), body, None),
                b'b' => (blob_name(&body), body, None),
                b'z' => {
                    let gz = compress(Compression::Gzip, &body);
                    (blob_name(&gz), gz, None)
                }
                b'j' => (format!("{}.json", Digest::of(&body).hex()), body, None),
                b'l' => (format!("{}/layer.tar", contents.len()), body, None),
                b'f' => {
                    let (name, content) = split_nul(&body);
                    (name, content.to_vec(), None)
                }
                b's' | b'h' => {
                    let (name, target) = split_nul(&body);
                    let kind = if kind == b's' {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    (name, Vec::new(), Some((kind, target.to_vec())))
                }
                b'd' => (
                    String::from_utf8_lossy(&body).into_owned(),
                    Vec::new(),
                    None,
                ),
                _ => continue,
            };
            let entry_type = match (&link, kind) {
                (Some((t, _)), _) => *t,
                (None, b'd') => tar::EntryType::Directory,
                _ => tar::EntryType::Regular,
            };
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(entry_type);
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            // Raw names (truncated to the header's 100 bytes): `set_path` would refuse
            // the `..` and absolute names the readers must refuse themselves.
            let name = name.as_bytes();
            let n = name.len().min(100);
            header.as_old_mut().name[..n].copy_from_slice(&name[..n]);
            if let Some((_, target)) = &link {
                let n = target.len().min(100);
                header.as_old_mut().linkname[..n].copy_from_slice(&target[..n]);
            }
            header.set_cksum();
            tar.append(&header, &content[..]).expect("in memory");
            if matches!(kind, b'b' | b'z' | b'j' | b'l' | b'f') {
                contents.push(content);
            }
        }
        let bytes = tar.into_inner().expect("in memory");
        if gzip {
            compress(Compression::Gzip, &bytes)
        } else {
            bytes
        }
    }

    /// Encode records (for seeds): mode `P` plain, `G` gzip, then the records.
    pub fn encode(mode: u8, records: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![mode];
        for (kind, body) in records {
            let len = u16::try_from(body.len()).expect("a record holds at most 64 KiB");
            out.push(*kind);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }
}

fn blob_name(content: &[u8]) -> String {
    format!("blobs/sha256/{}", Digest::of(content).hex())
}

fn split_nul(body: &[u8]) -> (String, &[u8]) {
    let (name, rest) = match body.iter().position(|&b| b == 0) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    (String::from_utf8_lossy(name).into_owned(), rest)
}

/// Replace `@dN`, `@hN`, `@sN` by the digest, hex and size of `contents[N]`.
fn substitute(body: &[u8], contents: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if let [b'@', what @ (b'd' | b'h' | b's'), n @ b'0'..=b'9', ..] = body[i..]
            && let Some(content) = contents.get(usize::from(n - b'0'))
        {
            let digest = Digest::of(content);
            let text = match what {
                b'd' => digest.to_string(),
                b'h' => digest.hex().to_string(),
                _ => content.len().to_string(),
            };
            out.extend_from_slice(text.as_bytes());
            i += 3;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------
// References and digests

/// The input as a digest, a hex digest and an image reference. What parses prints back
/// as it was given (a digest) or to a form that parses to the same thing (a reference).
pub fn names(text: &str) {
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string(), text, "a digest prints as it was given");
        assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert_eq!(d.short().len(), 12);
    }
    let from_json = serde_json::from_value::<Digest>(serde_json::Value::String(text.into()));
    assert_eq!(from_json.is_ok(), text.parse::<Digest>().is_ok());
    if let Ok(d) = Digest::from_hex(text) {
        assert_eq!(d.hex(), text);
    }

    let _ = validate_tag(text);
    let _ = validate_repository_name(text);
    let Ok(exact) = Reference::parse_exact(text) else {
        assert!(
            Reference::parse(text).is_err(),
            "parse and parse_exact agree"
        );
        return;
    };
    let parsed = Reference::parse(text).expect("parse and parse_exact agree");
    if exact.tag().is_none() && exact.digest().is_none() {
        assert_eq!(parsed.tag(), Some(crate::DEFAULT_TAG));
        assert_eq!(parsed.repository(), exact.repository());
    } else {
        assert_eq!(parsed, exact);
    }
    let full = parsed.to_string();
    assert_eq!(
        Reference::parse(&full).expect("a reference's full form parses"),
        parsed,
        "{full}"
    );
    validate_repository_name(parsed.path()).expect("a parsed path is valid");
    if let Some(tag) = parsed.tag() {
        validate_tag(tag).expect("a parsed tag is valid");
    }
    let retagged = parsed.with_tag("fuzz").unwrap();
    assert_eq!(Reference::parse(&retagged.to_string()).unwrap(), retagged);
    // The familiar form is ambiguous where docker's is: `docker.io/a.b/c` prints as
    // `a.b/c`, which names the registry a.b. Elsewhere it parses back.
    let familiar = parsed.familiar_repository();
    let first = familiar.split('/').next().unwrap_or_default();
    let ambiguous = familiar.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    if !ambiguous {
        assert_eq!(Reference::parse(&parsed.familiar()).unwrap(), parsed);
    }
}
