//! What the OCI conformance suite and Distribution expect beyond the everyday paths:
//! reads of impossible tags, sha512 addressing, Content-Range lengths, unknown
//! repositories and routes, catalog page limits, mounts without `from`, and descriptor
//! sizes checked against the stored blobs.

use kiln_store::Algorithm;

use super::*;

fn sha512(bytes: &[u8]) -> Digest {
    Digest::of_with(Algorithm::Sha512, bytes)
}

/// The error code, checking the body is the OCI error JSON.
fn json_code(headers: &axum::http::HeaderMap, body: &[u8]) -> String {
    assert_eq!(headers["content-type"], "application/json");
    code(body)
}

#[tokio::test]
async fn reads_of_a_tag_that_cannot_exist_are_manifest_unknown() {
    let h = Harness::new();
    for reference in [".INVALID_MANIFEST_NAME", "-bad", "has%20space"] {
        let uri = format!("/v2/app/manifests/{reference}");
        let (status, headers, body) = h.call("GET", &uri, &[], b"").await;
        assert_eq!(
            (status, json_code(&headers, &body)),
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()),
            "{reference}"
        );
        let (status, _, body) = h.call("HEAD", &uri, &[], b"").await;
        assert_eq!(
            (status, body.len()),
            (StatusCode::NOT_FOUND, 0),
            "{reference}"
        );
        let ct = [("content-type", OCI_MANIFEST)];
        let (status, _, body) = h.call("PUT", &uri, &ct, b"{}").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "TAG_INVALID".into()),
            "{reference}"
        );
    }
    // A malformed digest is still a bad request.
    let (status, _, body) = h
        .call("GET", "/v2/app/manifests/sha256:abc", &[], b"")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );
}

#[tokio::test]
async fn sha512_blobs_monolithic_chunked_and_mounted() {
    let h = Harness::new();
    // Monolithic.
    let d = sha512(b"0123456789");
    let (status, headers, _) = h
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            b"0123456789",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
    assert_eq!(headers["location"], format!("/v2/a/blobs/{d}").as_str());
    let (status, headers, _) = h.call("HEAD", &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(
        (status, &headers["content-length"]),
        (
            StatusCode::OK,
            &"10".parse::<axum::http::HeaderValue>().unwrap()
        )
    );
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
    let (status, headers, body) = h.call("GET", &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"0123456789"[..])
    );
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());

    // Wrong content for a sha512 digest: refused, nothing stored.
    let claimed = sha512(b"claimed");
    let (status, _, body) = h
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={claimed}"),
            &[],
            b"actual",
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );
    let (status, _, _) = h
        .call("HEAD", &format!("/v2/a/blobs/{claimed}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The sha256 digest of the same bytes names another blob, which is not there.
    let (status, _, _) = h
        .call(
            "HEAD",
            &format!("/v2/a/blobs/{}", Digest::of(b"0123456789")),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Chunked with Content-Range, and POST + one PATCH without it + PUT (docker's way).
    for ranged in [true, false] {
        let data = if ranged {
            &b"chunked sha512"[..]
        } else {
            &b"streamed sha512"[..]
        };
        let d = sha512(data);
        let (_, headers, _) = h.call("POST", "/v2/b/blobs/uploads/", &[], b"").await;
        let location = headers["location"].to_str().unwrap().to_string();
        if ranged {
            let (status, _, _) = h
                .call("PATCH", &location, &[("content-range", "0-6")], &data[..7])
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            let range = format!("7-{}", data.len() - 1);
            let (status, _, _) = h
                .call("PATCH", &location, &[("content-range", &range)], &data[7..])
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
        } else {
            let (status, _, _) = h.call("PATCH", &location, &[], data).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let (status, headers, _) = h
            .call("PUT", &format!("{location}?digest={d}"), &[], b"")
            .await;
        assert_eq!(status, StatusCode::CREATED, "ranged: {ranged}");
        assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
        let (_, _, body) = h.call("GET", &format!("/v2/b/blobs/{d}"), &[], b"").await;
        assert_eq!(body, data);
    }

    // Mounted, with and without `from`; deleted from one repository.
    let (status, _, _) = h
        .call(
            "POST",
            &format!("/v2/c/blobs/uploads/?mount={d}&from=a"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, _) = h
        .call("POST", &format!("/v2/e/blobs/uploads/?mount={d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
    let (status, _, _) = h
        .call("DELETE", &format!("/v2/c/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = h.call("HEAD", &format!("/v2/c/blobs/{d}"), &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = h.call("HEAD", &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sha512_manifests_by_digest_with_referrers() {
    let h = Harness::new();
    let config = {
        let d = sha512(b"{}");
        let (status, _, _) = h
            .call(
                "POST",
                &format!("/v2/app/blobs/uploads/?digest={d}"),
                &[],
                b"{}",
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        d
    };
    let layer = h.blob("app", b"L").await;
    let body = manifest(&config, &[&layer]);
    let d = sha512(body.as_bytes());
    let ct = [("content-type", OCI_MANIFEST)];
    let (status, headers, _) = h
        .call(
            "PUT",
            &format!("/v2/app/manifests/{d}"),
            &ct,
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
    assert_eq!(
        headers["location"],
        format!("/v2/app/manifests/{d}").as_str()
    );
    for method in ["GET", "HEAD"] {
        let (status, headers, got) = h
            .call(method, &format!("/v2/app/manifests/{d}"), &[], b"")
            .await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
        if method == "GET" {
            assert_eq!(got, body.as_bytes());
        }
    }
    // Another sha512 digest is refused as a mismatch, not stored.
    let other = sha512(b"other");
    let (status, _, got) = h
        .call(
            "PUT",
            &format!("/v2/app/manifests/{other}"),
            &ct,
            body.as_bytes(),
        )
        .await;
    assert_eq!(
        (status, code(&got)),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );

    // A referrer of the sha512 manifest, itself pushed by its sha512 digest.
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{}}}}}"#,
        body.len()
    );
    let r = sha512(referrer.as_bytes());
    let (status, headers, _) = h
        .call(
            "PUT",
            &format!("/v2/app/manifests/{r}"),
            &ct,
            referrer.as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["oci-subject"], d.to_string().as_str());
    let (status, _, got) = h
        .call("GET", &format!("/v2/app/referrers/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::OK);
    let index: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(index["manifests"][0]["digest"], r.to_string());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    let (status, _, _) = h
        .call("DELETE", &format!("/v2/app/manifests/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, got) = h
        .call("GET", &format!("/v2/app/manifests/{d}"), &[], b"")
        .await;
    assert_eq!(
        (status, code(&got)),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
    );
}

#[tokio::test]
async fn a_chunk_must_be_as_long_as_its_content_range() {
    let h = Harness::new();
    let (_, headers, _) = h.call("POST", "/v2/x/blobs/uploads/", &[], b"").await;
    let location = headers["location"].to_str().unwrap().to_string();
    let data = vec![7u8; 1000];
    // `2000-2000` does not even start where the upload is; `0-1999` and `0-499` start
    // right but span 2000 and 500 bytes for a 1000-byte body; `5-1` is no range.
    for range in ["2000-2000", "0-1999", "0-499", "5-1", "junk"] {
        let (status, headers, body) = h
            .call("PATCH", &location, &[("content-range", range)], &data)
            .await;
        assert_eq!(
            (status, json_code(&headers, &body)),
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID".into()
            ),
            "{range}"
        );
        assert_eq!(headers["location"], location.as_str());
        assert_eq!(headers["range"], "0-0", "{range}: nothing was kept");
    }
    let (status, headers, _) = h
        .call("PATCH", &location, &[("content-range", "0-999")], &data)
        .await;
    assert_eq!(
        (status, &headers["range"]),
        (
            StatusCode::ACCEPTED,
            &"0-999".parse::<axum::http::HeaderValue>().unwrap()
        )
    );
    // The closing PUT is held to its Content-Range too; the session survives it.
    let d = Digest::of(&[&data[..], b"end"].concat());
    let (status, headers, body) = h
        .call(
            "PUT",
            &format!("{location}?digest={d}"),
            &[("content-range", "1000-1009")],
            b"end",
        )
        .await;
    assert_eq!(
        (status, json_code(&headers, &body)),
        (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID".into()
        )
    );
    let (status, _, _) = h
        .call(
            "PUT",
            &format!("{location}?digest={d}"),
            &[("content-range", "1000-1002")],
            b"end",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_repositories_routes_and_ranges_answer_oci_errors() {
    let h = Harness::new();
    let (status, headers, body) = h.call("GET", "/v2/nope/tags/list", &[], b"").await;
    assert_eq!(
        (status, json_code(&headers, &body)),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
    );
    // A repository holding only a blob is known: it has no tags.
    let d = h.blob("blobs/only", b"b").await;
    let (status, _, body) = h.call("GET", "/v2/blobs/only/tags/list", &[], b"").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["tags"], serde_json::json!([]));
    // `blobs` itself (a prefix of a name that exists) is not.
    let (status, _, _) = h.call("GET", "/v2/blobs/tags/list", &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for path in ["/v2/x/nothing", "/v2/justaname", "/v3/", "/favicon.ico"] {
        let (status, headers, body) = h.call("GET", path, &[], b"").await;
        assert_eq!(
            (status, json_code(&headers, &body)),
            (StatusCode::NOT_FOUND, "UNSUPPORTED".into()),
            "{path}"
        );
    }
    let (status, headers, body) = h
        .call(
            "GET",
            &format!("/v2/blobs/only/blobs/{d}"),
            &[("range", "bytes=5-")],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], "bytes */1");
    assert_eq!(json_code(&headers, &body), "UNSUPPORTED");
}

#[tokio::test]
async fn catalog_pages_are_bounded_as_distribution_bounds_them() {
    let h = Harness::new();
    for (n, want) in [
        ("1000", StatusCode::OK),
        ("1001", StatusCode::BAD_REQUEST),
        ("999999999", StatusCode::BAD_REQUEST),
    ] {
        let (status, headers, body) = h
            .call("GET", &format!("/v2/_catalog?n={n}"), &[], b"")
            .await;
        assert_eq!(status, want, "n={n}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(json_code(&headers, &body), "PAGINATION_NUMBER_INVALID");
        }
    }
}

#[tokio::test]
async fn a_mount_without_from_finds_the_blob_anywhere_today() {
    let h = Harness::new();
    let d = h.blob("somewhere/else", b"shared").await;
    let (status, headers, _) = h
        .call(
            "POST",
            &format!("/v2/mine/blobs/uploads/?mount={d}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["location"], format!("/v2/mine/blobs/{d}").as_str());
    // A blob the registry lacks starts an ordinary upload instead.
    let missing = Digest::of(b"missing");
    let (status, headers, _) = h
        .call(
            "POST",
            &format!("/v2/mine/blobs/uploads/?mount={missing}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/v2/mine/blobs/uploads/")
    );
}

#[tokio::test]
async fn a_descriptor_whose_size_disagrees_with_its_blob_is_refused() {
    let h = Harness::new();
    let config = h.blob("app", b"{}").await;
    // `manifest` says every layer is 1 byte; this one has 5.
    let layer = h.blob("app", b"12345").await;
    let ct = [("content-type", OCI_MANIFEST)];
    let wrong = manifest(&config, &[&layer]);
    let (status, headers, body) = h
        .call("PUT", "/v2/app/manifests/v1", &ct, wrong.as_bytes())
        .await;
    assert_eq!(
        (status, json_code(&headers, &body)),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID".into())
    );
    let detail = String::from_utf8_lossy(&body);
    assert!(detail.contains("says 1 bytes, the blob has 5"), "{detail}");
    // Nothing was stored under the tag.
    let (status, _, _) = h.call("GET", "/v2/app/manifests/v1", &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The config's size is checked too: the same manifest with the config's size wrong.
    let one_byte = h.blob("app", b"L").await;
    let wrong_config = manifest(&config, &[&one_byte]).replace(r#""size":2"#, r#""size":3"#);
    let (status, _, body) = h
        .call("PUT", "/v2/app/manifests/v1", &ct, wrong_config.as_bytes())
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID".into())
    );
    // Sizes that agree are accepted.
    let right = manifest(&config, &[&one_byte]);
    let (status, _, _) = h
        .call("PUT", "/v2/app/manifests/v1", &ct, right.as_bytes())
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_mount_needs_read_access_to_a_repository_holding_the_blob() {
    let h = Harness::new();
    let d = h.blob("team/private", b"secret layer").await;
    // The status of a mount into `mine` by a caller who may read only `readable`.
    let mount = |query: String, readable: &'static [&'static str]| {
        let mut request = Request::builder()
            .method("POST")
            .uri(format!("/v2/mine/blobs/uploads/?{query}"))
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(Access::only(readable.iter().copied()));
        let app = h.app.clone();
        async move { app.oneshot(request).await.unwrap().status() }
    };
    // Without `from`: only a caller who may read a repository holding it mounts; anyone
    // else starts an ordinary upload, learning nothing of the blob.
    assert_eq!(
        mount(format!("mount={d}"), &["team/public"]).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        mount(format!("mount={d}"), &["team/private"]).await,
        StatusCode::CREATED
    );
    // With `from`: the caller must be able to read `from`.
    let from = format!("mount={d}&from=team/private");
    assert_eq!(
        mount(from.clone(), &["team/public"]).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(mount(from, &["team/private"]).await, StatusCode::CREATED);
}
