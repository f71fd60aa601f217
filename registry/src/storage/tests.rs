use futures::{StreamExt, TryStreamExt, stream};

use super::*;

const SHA256: kiln_store::Algorithm = kiln_store::Algorithm::Sha256;

/// Set back the time of every stored file (objects and claim markers) by `by`.
fn age_everything(dir: &tempfile::TempDir, by: std::time::Duration) {
    let mut stack = vec![dir.path().join("registry")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let file = std::fs::File::options().write(true).open(&p).unwrap();
                let then = file.metadata().unwrap().modified().unwrap() - by;
                file.set_modified(then).unwrap();
            }
        }
    }
}

fn storage() -> (tempfile::TempDir, RegistryStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = RegistryStorage::local(&dir.path().join("registry")).unwrap();
    (dir, storage)
}

fn body(parts: &[&[u8]]) -> impl Stream<Item = std::result::Result<Bytes, String>> + Unpin + use<> {
    stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect::<Vec<_>>(),
    )
}

async fn read_all(
    storage: &RegistryStorage,
    digest: &Digest,
    range: Option<Range<u64>>,
) -> Vec<u8> {
    let (_, s) = storage.get_blob(digest, range).await.unwrap();
    let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
    chunks.concat()
}

/// Every object under the storage root, for "nothing was left behind".
fn objects(dir: &tempfile::TempDir) -> Vec<String> {
    let root = dir.path().join("registry");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.starts_with(root.join("gc")) {
                // gc/ holds the claim markers (storage::claim); the tests look at objects.
                out.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn monolithic_put_verifies_before_the_blob_appears() {
    let (dir, storage) = storage();
    let data = b"hello registry";
    let digest = Digest::of(data);
    assert_eq!(storage.blob_size(&digest).await.unwrap(), None);
    let size = storage
        .put_blob(&digest, body(&[b"hello ", b"registry"]))
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(storage.blob_size(&digest).await.unwrap(), Some(size));
    assert_eq!(read_all(&storage, &digest, None).await, data);
    assert_eq!(read_all(&storage, &digest, Some(6..14)).await, b"registry");
    assert_eq!(
        objects(&dir),
        [format!(
            "blobs/sha256/{}/{}",
            &digest.hex()[..2],
            digest.hex()
        )]
    );

    // Wrong bytes for a digest: an error, and no trace in storage.
    let other = Digest::of(b"something else");
    let err = storage
        .put_blob(&other, body(&[b"not it"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DigestInvalid { .. }), "{err}");
    assert_eq!(storage.blob_size(&other).await.unwrap(), None);
    assert_eq!(objects(&dir).len(), 1);
}

#[tokio::test]
async fn a_failing_body_leaves_nothing() {
    let (dir, storage) = storage();
    let failing = stream::iter(vec![
        Ok(Bytes::from_static(b"part")),
        Err("connection reset".to_string()),
    ]);
    let err = storage
        .put_blob(&Digest::of(b"part"), failing)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Body(_)), "{err}");
    assert!(objects(&dir).is_empty(), "{:?}", objects(&dir));
}

#[tokio::test]
async fn chunked_upload_in_order_then_finish() {
    let (dir, storage) = storage();
    let session = storage.start_upload("team/app").await.unwrap();
    assert_eq!(session.size, 0);
    let s = storage
        .append_upload(&session.id, Some(0), body(&[b"abc", b"def"]))
        .await
        .unwrap();
    assert_eq!(s.size, 6);
    let s = storage
        .append_upload(&session.id, None, body(&[b"ghi"]))
        .await
        .unwrap();
    assert_eq!(s.size, 9);
    // Any replica sees the same state: it lives in storage, not in this process.
    let again = RegistryStorage::local(&dir.path().join("registry")).unwrap();
    let status = again.upload_status(&session.id).await.unwrap();
    assert_eq!((status.repository.as_str(), status.size), ("team/app", 9));

    // Out of order and overlapping chunks are refused with the current size.
    for start in [3, 12] {
        let err = storage
            .append_upload(&session.id, Some(start), body(&[b"x"]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::RangeInvalid { size: 9, .. }),
            "{err}"
        );
    }

    let wrong = Digest::of(b"abcdefgh");
    let err = storage
        .finish_upload(&session.id, None, body(&[]), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DigestInvalid { .. }), "{err}");
    assert_eq!(storage.blob_size(&wrong).await.unwrap(), None);
    assert_eq!(
        storage.upload_status(&session.id).await.unwrap().size,
        9,
        "the session survives a bad digest"
    );

    // A last piece can come with the finish, and must start where the upload ends.
    let digest = Digest::of(b"abcdefghijk");
    let err = storage
        .finish_upload(&session.id, Some(5), body(&[b"x"]), &digest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::RangeInvalid { size: 9, .. }),
        "{err}"
    );
    let size = storage
        .finish_upload(&session.id, Some(9), body(&[b"jk"]), &digest)
        .await
        .unwrap();
    assert_eq!(size, 11);
    assert_eq!(read_all(&storage, &digest, None).await, b"abcdefghijk");
    let err = storage.upload_status(&session.id).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err}");
    assert_eq!(objects(&dir).len(), 1, "{:?}", objects(&dir));
}

#[tokio::test]
async fn one_patch_then_an_empty_put_renames_the_chunk() {
    let (dir, storage) = storage();
    let data = b"the whole blob in one PATCH".repeat(1000);
    let digest = Digest::of(&data);
    // A wrong digest still fails, and the session survives it.
    let session = storage.start_upload("team/app").await.unwrap();
    storage
        .append_upload(&session.id, None, body(&[&data[..100], &data[100..]]))
        .await
        .unwrap();
    let wrong = Digest::of(b"other");
    let err = storage
        .finish_upload(&session.id, None, body(&[]), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::DigestInvalid { .. }), "{err}");
    let size = storage
        .finish_upload(&session.id, None, body(&[]), &digest)
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read_all(&storage, &digest, None).await, data);
    assert_eq!(objects(&dir).len(), 1, "{:?}", objects(&dir));

    // Two chunks, or a body on the PUT: the copying path, same result.
    let session = storage.start_upload("team/app").await.unwrap();
    storage
        .append_upload(&session.id, Some(0), body(&[&data[..10]]))
        .await
        .unwrap();
    let d2 = Digest::of(&data[..20]);
    storage
        .finish_upload(&session.id, Some(10), body(&[&data[10..20]]), &d2)
        .await
        .unwrap();
    assert_eq!(read_all(&storage, &d2, None).await, &data[..20]);
}

#[tokio::test]
async fn cancel_and_unknown_sessions() {
    let (dir, storage) = storage();
    let session = storage.start_upload("a").await.unwrap();
    storage
        .append_upload(&session.id, None, body(&[b"data"]))
        .await
        .unwrap();
    storage.cancel_upload(&session.id).await.unwrap();
    assert!(objects(&dir).is_empty());
    for id in [session.id.as_str(), "../../blobs", "nothex", ""] {
        let err = storage.upload_status(id).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound(_)), "{id}: {err}");
        assert!(storage.cancel_upload(id).await.is_err());
    }
}

#[tokio::test]
async fn a_large_blob_streams_through_several_parts() {
    let (_dir, storage) = storage();
    // 20 MiB in 1 MiB pieces: more than two multipart parts.
    let piece = vec![0x5au8; 1 << 20];
    let mut hasher = kiln_store::Hasher::new(SHA256);
    for _ in 0..20 {
        hasher.update(&piece);
    }
    let digest = hasher.finish();
    let pieces = stream::iter((0..20).map(|_| Ok::<_, String>(Bytes::from(piece.clone()))));
    let size = storage.put_blob(&digest, pieces).await.unwrap();
    assert_eq!(size, 20 << 20);
    let (total, s) = storage.get_blob(&digest, None).await.unwrap();
    assert_eq!(total, 20 << 20);
    let n = s
        .map(|c| c.unwrap().len())
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(n, 20 << 20);
}

#[tokio::test]
async fn manifests_tags_and_links_per_repository() {
    let (_dir, storage) = storage();
    let layer = Digest::of(b"layer");
    storage.put_blob(&layer, body(&[b"layer"])).await.unwrap();
    assert!(!storage.blob_linked("team/app", &layer).await.unwrap());
    storage.link_blob("team/app", &layer).await.unwrap();
    assert!(storage.blob_linked("team/app", &layer).await.unwrap());
    assert!(!storage.blob_linked("other", &layer).await.unwrap());

    let mt = "application/vnd.oci.image.manifest.v1+json";
    let m1 = Bytes::from_static(br#"{"schemaVersion":2,"n":1}"#);
    let m2 = Bytes::from_static(br#"{"schemaVersion":2,"n":2}"#);
    let d1 = storage
        .put_manifest("team/app", m1.clone(), mt, SHA256, Some("v1"))
        .await
        .unwrap();
    let d2 = storage
        .put_manifest("team/app", m2.clone(), mt, SHA256, Some("v2"))
        .await
        .unwrap();
    storage
        .put_manifest("team/app", m1.clone(), mt, SHA256, Some("latest"))
        .await
        .unwrap();
    assert_eq!(
        storage.tags("team/app").await.unwrap(),
        ["latest", "v1", "v2"]
    );

    let by_tag = storage.get_manifest("team/app", "v1").await.unwrap();
    assert_eq!(
        (by_tag.digest.clone(), by_tag.bytes.clone()),
        (d1.clone(), m1.clone())
    );
    let by_digest = storage
        .get_manifest("team/app", &d2.to_string())
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, m2);
    assert_eq!(by_digest.media_type, mt);
    // Another repository does not see them, though the blobs are shared.
    assert!(matches!(
        storage.get_manifest("other", "v1").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        storage.get_manifest("other", &d1.to_string()).await,
        Err(StorageError::NotFound(_))
    ));

    // A tag moves: last writer wins.
    storage
        .put_manifest("team/app", m2.clone(), mt, SHA256, Some("v1"))
        .await
        .unwrap();
    assert_eq!(
        storage.get_manifest("team/app", "v1").await.unwrap().digest,
        d2
    );

    // Deleting a manifest takes every tag pointing at it.
    storage.delete_manifest("team/app", &d2).await.unwrap();
    assert_eq!(storage.tags("team/app").await.unwrap(), ["latest"]);
    assert!(
        storage
            .get_manifest("team/app", &d2.to_string())
            .await
            .is_err()
    );
    storage.delete_tag("team/app", "latest").await.unwrap();
    assert!(storage.tags("team/app").await.unwrap().is_empty());
    assert!(storage.tags("never/pushed").await.unwrap().is_empty());
}

#[tokio::test]
async fn gc_removes_what_no_tag_reaches() {
    use std::time::Duration;
    let (dir, storage) = storage();
    let put = |data: &'static [u8]| {
        let storage = storage.clone();
        async move {
            let d = Digest::of(data);
            storage.put_blob(&d, body(&[data])).await.unwrap();
            storage.link_blob("app", &d).await.unwrap();
            d
        }
    };
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let manifest = |config: &Digest, layer: &Digest, subject: Option<&Digest>| {
        let subject = subject
            .map(|s| format!(r#","subject":{{"mediaType":"{mt}","digest":"{s}","size":1}}"#))
            .unwrap_or_default();
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]{subject}}}"#
        ))
    };
    let config = put(b"{}").await;
    let (la, lb, ld, lr, orphan) = (
        put(b"a").await,
        put(b"b").await,
        put(b"d").await,
        put(b"r").await,
        put(b"orphan").await,
    );
    // A tagged image; an untagged one; an index (tagged) whose child is untagged; a
    // referrer of the tagged image.
    let a = storage
        .put_manifest("app", manifest(&config, &la, None), mt, SHA256, Some("v1"))
        .await
        .unwrap();
    let b = storage
        .put_manifest("app", manifest(&config, &lb, None), mt, SHA256, None)
        .await
        .unwrap();
    let d = storage
        .put_manifest("app", manifest(&config, &ld, None), mt, SHA256, None)
        .await
        .unwrap();
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{mt}","digest":"{d}","size":1}}]}}"#
    ));
    storage
        .put_manifest(
            "app",
            index,
            "application/vnd.oci.image.index.v1+json",
            SHA256,
            Some("multi"),
        )
        .await
        .unwrap();
    let r_bytes = manifest(&config, &lr, Some(&a));
    let r_digest = Digest::of(&r_bytes);
    let mut r_desc = kiln_store::Descriptor::new(mt, r_digest.clone(), r_bytes.len() as u64);
    r_desc.artifact_type = Some("application/vnd.example.sig".into());
    storage.add_referrer("app", &a, &r_desc).await.unwrap();
    storage
        .put_manifest("app", r_bytes, mt, SHA256, None)
        .await
        .unwrap();

    // Everything is young: with the default grace nothing goes.
    let report = storage.gc(false, Duration::from_secs(3600)).await.unwrap();
    assert!(
        report.manifests.is_empty() && report.blobs.is_empty(),
        "{report:?}"
    );

    // Pushes ended long ago: their claims no longer count, whatever the grace.
    age_everything(&dir, Duration::from_secs(7200));
    let dry = storage.gc(true, Duration::ZERO).await.unwrap();
    assert_eq!(dry.manifests, vec![("app".to_string(), b.clone())]);
    let mut removed: Vec<Digest> = dry.blobs.iter().map(|(d, _)| d.clone()).collect();
    removed.sort();
    let mut want = vec![b.clone(), lb.clone(), orphan.clone()];
    want.sort();
    assert_eq!(removed, want);
    assert!(
        storage.blob_size(&orphan).await.unwrap().is_some(),
        "a dry run deletes nothing"
    );

    storage.gc(false, Duration::ZERO).await.unwrap();
    for gone in [&lb, &orphan, &b] {
        assert_eq!(storage.blob_size(gone).await.unwrap(), None, "{gone}");
    }
    assert!(storage.get_manifest("app", &b.to_string()).await.is_err());
    for kept in [&config, &la, &ld, &lr] {
        assert!(storage.blob_size(kept).await.unwrap().is_some(), "{kept}");
    }
    for kept in [&a, &d, &r_digest] {
        storage
            .get_manifest("app", &kept.to_string())
            .await
            .unwrap();
    }
    assert!(
        !storage.blob_linked("app", &orphan).await.unwrap(),
        "dangling link removed"
    );
    assert_eq!(storage.referrers("app", &a).await.unwrap().len(), 1);
}

#[tokio::test]
async fn gc_keeps_and_collects_sha512_objects_by_their_own_digests() {
    use std::time::Duration;
    let sha512 = kiln_store::Algorithm::Sha512;
    let (dir, storage) = storage();
    let put = |data: &'static [u8]| {
        let storage = storage.clone();
        async move {
            let d = Digest::of_with(sha512, data);
            storage.put_blob(&d, body(&[data])).await.unwrap();
            storage.link_blob("app", &d).await.unwrap();
            d
        }
    };
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let manifest = |config: &Digest, layer: &Digest| {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#
        ))
    };
    let config = put(b"{}").await;
    let (kept_layer, dropped_layer, orphan) = (put(b"k").await, put(b"d").await, put(b"o").await);
    // A tagged image addressed by sha512, and an untagged one.
    let tagged = storage
        .put_manifest(
            "app",
            manifest(&config, &kept_layer),
            mt,
            sha512,
            Some("v1"),
        )
        .await
        .unwrap();
    let untagged = storage
        .put_manifest("app", manifest(&config, &dropped_layer), mt, sha512, None)
        .await
        .unwrap();
    assert_eq!(tagged.algorithm(), sha512);

    age_everything(&dir, Duration::from_secs(7200));
    let report = storage.gc(false, Duration::ZERO).await.unwrap();
    assert_eq!(
        report.manifests,
        vec![("app".to_string(), untagged.clone())]
    );
    let mut removed: Vec<Digest> = report.blobs.iter().map(|(d, _)| d.clone()).collect();
    removed.sort();
    let mut want = vec![untagged.clone(), dropped_layer.clone(), orphan.clone()];
    want.sort();
    assert_eq!(removed, want);
    for gone in &want {
        assert_eq!(storage.blob_size(gone).await.unwrap(), None, "{gone}");
    }
    assert!(
        !storage.blob_linked("app", &orphan).await.unwrap(),
        "the sha512 link went with its blob"
    );
    for kept in [&config, &kept_layer, &tagged] {
        assert!(storage.blob_size(kept).await.unwrap().is_some(), "{kept}");
    }
    storage
        .get_manifest("app", &tagged.to_string())
        .await
        .unwrap();
    storage.get_manifest("app", "v1").await.unwrap();
}
