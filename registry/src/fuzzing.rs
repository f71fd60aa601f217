//! Entry points that drive the registry's readers of outside bytes (manifest PUTs, request
//! paths, `Content-Range`, query values) with arbitrary input and assert what must hold
//! whatever the input, for the fuzz targets in `fuzz/` and for the tests that replay their
//! corpora on stable. A broken invariant panics: that is what the fuzzer reports.

use std::sync::{Arc, OnceLock};

use axum::{
    body::Body,
    http::{HeaderValue, Request, header},
};
use bytes::Bytes;
use futures::stream;
use kiln_store::{
    Digest, Index, Manifest,
    media_type::{
        self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
    },
    spec::{self, DocumentKind},
};

use crate::{
    server::{
        dispatch::{Route, route},
        uploads::{content_range, percent_decode},
    },
    services::manifests::{self, ManifestError, ManifestReference, put_manifest},
    storage::{RegistryStorage, StorageError},
};

/// The repository manifests are pushed to.
pub const REPO: &str = "fuzz/repo";
/// A config and a layer the repository holds, a blob only another repository holds, and
/// the manifest of the first two (pushed untagged): fuzzed manifests can name them.
pub const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
pub const LAYER: &[u8] = b"a layer, as far as the registry cares";
pub const FOREIGN: &[u8] = b"a blob of another repository";

/// The manifest of `CONFIG` and `LAYER`, which the fuzzed repository holds.
pub fn child_manifest() -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        Digest::of(CONFIG),
        CONFIG.len(),
        media_type::OCI_LAYER,
        Digest::of(LAYER),
        LAYER.len(),
    )
    .into_bytes()
}

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_MANIFEST_LIST),
    Some("application/json"),
    Some(OCI_CONFIG),
    Some("application/vnd.docker.distribution.manifest.v1+json"),
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A manifest PUT, through the same service the handler calls, into fresh in-memory
/// storage holding the fixtures above. The first byte picks the request's `Content-Type`
/// and whether the URL names a tag, the body's digest or another digest; the rest is the
/// body. An accepted manifest is stored byte for byte under its digest (and tag), and
/// everything it names is in the repository with the size its descriptor says; a refused
/// one leaves no trace.
pub fn manifest(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let reference = match (selector / 8) % 3 {
        0 => ManifestReference::Tag("t".into()),
        1 => ManifestReference::Digest(Digest::of(body)),
        _ => ManifestReference::Digest(Digest::of(b"not the body")),
    };
    runtime().block_on(put_and_check(body, content_type, &reference));
}

async fn put_and_check(body: &[u8], content_type: Option<&str>, reference: &ManifestReference) {
    let storage = RegistryStorage::new(Arc::new(object_store::memory::InMemory::new()));
    let child = child_manifest();
    for (blob, linked) in [(CONFIG, true), (LAYER, true), (FOREIGN, false)] {
        let digest = Digest::of(blob);
        let chunk = Ok::<_, std::io::Error>(Bytes::from_static(blob));
        storage
            .put_blob(&digest, stream::iter([chunk]))
            .await
            .unwrap();
        if linked {
            storage.link_blob(REPO, &digest).await.unwrap();
        }
    }
    let pushed = put_manifest(
        &storage,
        REPO,
        Bytes::from(child.clone()),
        None,
        &ManifestReference::Digest(Digest::of(&child)),
    )
    .await
    .expect("the fixture manifest is accepted");

    let digest = Digest::of(body);
    let validated = manifests::media_type(body, content_type);
    let result = put_manifest(
        &storage,
        REPO,
        Bytes::copy_from_slice(body),
        content_type,
        reference,
    )
    .await;
    let stored = match result {
        Ok(stored) => stored,
        Err(e) => {
            match &e {
                ManifestError::Storage(s) => panic!("in-memory storage failed: {s}"),
                ManifestError::DigestMismatch { url, actual } => {
                    assert_ne!(url, actual);
                    assert_eq!(actual, &digest);
                }
                ManifestError::Invalid(_) | ManifestError::BlobUnknown(_) => {}
            }
            if validated.is_err() {
                assert!(matches!(e, ManifestError::Invalid(_)), "{e}");
            }
            if digest != pushed.digest {
                let found = storage.get_manifest(REPO, &digest.to_string()).await;
                assert!(
                    matches!(found, Err(StorageError::NotFound(_))),
                    "refused ({e}), yet stored"
                );
            }
            let tag = storage.get_manifest(REPO, "t").await;
            assert!(
                matches!(tag, Err(StorageError::NotFound(_))),
                "refused ({e}), yet tagged"
            );
            return;
        }
    };

    let media_type = validated.expect("an accepted manifest has a valid media type");
    assert_eq!(stored.digest, digest);
    if let ManifestReference::Digest(url) = reference {
        assert_eq!(url, &digest, "the URL's digest is the manifest's");
    }
    let back = storage
        .get_manifest(REPO, &digest.to_string())
        .await
        .unwrap();
    assert_eq!(&back.bytes[..], body, "stored byte for byte");
    assert_eq!(back.media_type, media_type);
    if let ManifestReference::Tag(tag) = reference {
        assert_eq!(
            storage.get_manifest(REPO, tag).await.unwrap().digest,
            digest
        );
    }

    let kind = spec::document_kind(body, Some(&media_type), "m").expect("an accepted manifest");
    assert_eq!(
        kind == DocumentKind::Manifest,
        media_type::is_manifest(&media_type)
    );
    assert_eq!(
        kind == DocumentKind::Index,
        media_type::is_index(&media_type)
    );
    let subject = match kind {
        DocumentKind::Manifest => {
            let m: Manifest = spec::from_json(body, "m").expect("an accepted manifest");
            let again: Manifest = spec::from_json(&spec::to_json(&m), "m").unwrap();
            assert_eq!(again, m, "a manifest survives a round trip");
            for d in std::iter::once(&m.config).chain(&m.layers) {
                if d.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                    continue; // foreign layers live elsewhere
                }
                let held = [CONFIG, LAYER]
                    .iter()
                    .any(|b| Digest::of(b) == d.digest && b.len() as u64 == d.size);
                assert!(
                    held,
                    "accepted a manifest naming {d:?}, which the repository lacks"
                );
            }
            m.subject
        }
        DocumentKind::Index => {
            let index: Index = spec::from_json(body, "i").expect("an accepted index");
            let again: Index = spec::from_json(&spec::to_json(&index), "i").unwrap();
            assert_eq!(again, index, "an index survives a round trip");
            for d in &index.manifests {
                assert_eq!(d.digest, pushed.digest, "accepted an index naming {d:?}");
            }
            index.subject
        }
    };
    let subject = subject.map(|s| s.digest);
    assert_eq!(stored.subject, subject);
    if let Some(subject) = &subject {
        let referrers = storage.referrers(REPO, subject).await.unwrap();
        assert!(
            referrers.iter().any(|d| d.digest == digest),
            "listed as a referrer"
        );
    }
}

/// Request text: the input as a `/v2/…` path, a `Content-Range` value and a query value,
/// and (through the store) as a digest and an image reference. A route names the whole
/// path; a range that parses starts where the header says; percent-decoding undoes
/// percent-encoding.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    kiln_store::fuzzing::names(&text);
    for line in text.lines().take(4) {
        kiln_store::fuzzing::names(line);
    }

    check_route(&text);
    for prefix in ["/v2/", "/v2/a/b/"] {
        check_route(&format!("{prefix}{text}"));
    }

    let range = |value: &[u8]| {
        let value = HeaderValue::from_bytes(value).ok()?;
        let request = Request::builder()
            .header(header::CONTENT_RANGE, value)
            .body(Body::empty())
            .unwrap();
        Some(content_range(&request).ok())
    };
    if let Some(Some(Some((start, end)))) = range(data) {
        assert!(start <= end, "{text:?} ends before it starts");
        assert!(
            text.contains(&start.to_string()) && text.contains(&end.to_string()),
            "{text:?} spans {start}-{end}?"
        );
    }
    let mut numbers = [0u8; 16];
    let n = data.len().min(16);
    numbers[..n].copy_from_slice(&data[..n]);
    let a = u64::from_le_bytes(numbers[..8].try_into().unwrap());
    let b = u64::from_le_bytes(numbers[8..].try_into().unwrap());
    for form in [
        format!("{a}-{b}"),
        format!("bytes {a}-{b}"),
        format!("bytes={a}-{b}"),
    ] {
        // A range that ends before it starts is refused (416), not read.
        let expected = (a <= b).then_some((a, b));
        assert_eq!(range(form.as_bytes()), Some(expected.map(Some)), "{form}");
    }

    let decoded = percent_decode(&text);
    if !text.contains('%') {
        assert_eq!(decoded, text);
    }
    let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(percent_decode(&encoded), text, "decoding undoes encoding");
}

/// The route read from a path names all of it: rebuilt, it is the path again.
fn check_route(path: &str) {
    let rebuilt = match route(path) {
        Route::Base | Route::Catalog | Route::NotFound => return,
        Route::Referrers { name, digest } => format!("/v2/{name}/referrers/{digest}"),
        Route::Tags { name } => format!("/v2/{name}/tags/list"),
        Route::Manifest { name, reference } => format!("/v2/{name}/manifests/{reference}"),
        Route::Blob { name, digest } => format!("/v2/{name}/blobs/{digest}"),
        Route::Uploads { name } => {
            let bare = format!("/v2/{name}/blobs/uploads");
            if path.ends_with('/') {
                bare + "/"
            } else {
                bare
            }
        }
        Route::Upload { name, id } => format!("/v2/{name}/blobs/uploads/{id}"),
    };
    assert_eq!(rebuilt, path);
}
