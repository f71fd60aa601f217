//! Manifests, tags, catalog, referrers and Accept negotiation.

use super::*;

#[tokio::test]
async fn manifests_by_tag_and_digest_with_validation() {
    let h = Harness::new();
    let config = h.blob("app", b"{}").await;
    // One byte: the test manifests give every layer the size 1.
    let layer = h.blob("app", b"L").await;
    let body = manifest(&config, &[&layer]);
    let digest = Digest::of(body.as_bytes());
    let ct = [("content-type", OCI_MANIFEST)];

    let (status, headers, _) = h
        .call("PUT", "/v2/app/manifests/v1", &ct, body.as_bytes())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        headers["docker-content-digest"],
        digest.to_string().as_str()
    );
    assert_eq!(
        headers["location"],
        format!("/v2/app/manifests/{digest}").as_str()
    );
    for reference in ["v1".to_string(), digest.to_string()] {
        let (status, headers, got) = h
            .call("GET", &format!("/v2/app/manifests/{reference}"), &[], b"")
            .await;
        assert_eq!((status, got.as_slice()), (StatusCode::OK, body.as_bytes()));
        assert_eq!(headers["content-type"], OCI_MANIFEST);
        let (status, headers, got) = h
            .call("HEAD", &format!("/v2/app/manifests/{reference}"), &[], b"")
            .await;
        assert_eq!((status, got.len()), (StatusCode::OK, 0));
        assert_eq!(headers["content-length"], body.len().to_string().as_str());
    }

    let missing = Digest::of(b"not pushed");
    let longer = h.blob("app", b"two bytes").await;
    let cases: Vec<(String, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            // The descriptor says 1 byte; the stored blob has 9.
            "/v2/app/manifests/v2".into(),
            OCI_MANIFEST,
            manifest(&config, &[&longer]).into_bytes(),
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "/v2/app/manifests/v2".into(),
            OCI_MANIFEST,
            manifest(&config, &[&missing]).into_bytes(),
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
        ),
        (
            "/v2/app/manifests/v2".into(),
            OCI_MANIFEST,
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "/v2/app/manifests/v2".into(),
            "application/vnd.docker.distribution.manifest.list.v2+json",
            body.clone().into_bytes(),
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "/v2/app/manifests/-bad".into(),
            OCI_MANIFEST,
            body.clone().into_bytes(),
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
        ),
        (
            format!("/v2/app/manifests/{missing}"),
            OCI_MANIFEST,
            body.clone().into_bytes(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/Bad_Name/manifests/v1".into(),
            OCI_MANIFEST,
            body.clone().into_bytes(),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            "/v2/app/manifests/big".into(),
            OCI_MANIFEST,
            vec![b' '; (4 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
        ),
    ];
    for (uri, ct, payload, want_status, want_code) in cases {
        let (status, _, got) = h.call("PUT", &uri, &[("content-type", ct)], &payload).await;
        assert_eq!(
            (status, code(&got)),
            (want_status, want_code.to_string()),
            "{uri}"
        );
    }
    assert_eq!(
        h.call("GET", "/v2/app/manifests/v2", &[], b"").await.0,
        StatusCode::NOT_FOUND
    );

    // Delete by digest takes the tag with it.
    let (status, _, _) = h
        .call("DELETE", &format!("/v2/app/manifests/{digest}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, got) = h.call("GET", "/v2/app/manifests/v1", &[], b"").await;
    assert_eq!(
        (status, code(&got)),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
    );
}

#[tokio::test]
async fn tag_list_pages_with_a_link() {
    let h = Harness::new();
    let config = h.blob("p", b"{}").await;
    let body = manifest(&config, &[]);
    for tag in ["c", "a", "b", "d"] {
        let (status, _, _) = h
            .call(
                "PUT",
                &format!("/v2/p/manifests/{tag}"),
                &[("content-type", OCI_MANIFEST)],
                body.as_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, _, all) = h.call("GET", "/v2/p/tags/list", &[], b"").await;
    let all: serde_json::Value = serde_json::from_slice(&all).unwrap();
    assert_eq!(
        all,
        serde_json::json!({"name": "p", "tags": ["a", "b", "c", "d"]})
    );
    let (_, headers, page) = h.call("GET", "/v2/p/tags/list?n=2", &[], b"").await;
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(page["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        headers["link"],
        "</v2/p/tags/list?n=2&last=b>; rel=\"next\""
    );
    let (_, headers, page) = h.call("GET", "/v2/p/tags/list?n=2&last=b", &[], b"").await;
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(page["tags"], serde_json::json!(["c", "d"]));
    assert!(headers.get("link").is_none());
}

#[tokio::test]
async fn referrers_are_indexed_by_subject_and_filtered() {
    let h = Harness::new();
    let config = h.blob("app", b"{}").await;
    let image = manifest(&config, &[]);
    let image_digest = Digest::of(image.as_bytes());
    let ct = [("content-type", OCI_MANIFEST)];
    h.call("PUT", "/v2/app/manifests/v1", &ct, image.as_bytes())
        .await;

    let artifact = |kind: &str, n: u32| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{kind}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{image_digest}","size":{}}},"annotations":{{"n":"{n}"}}}}"#,
            image.len()
        )
    };
    let sig = artifact("application/vnd.example.signature", 1);
    let sbom = artifact("application/vnd.example.sbom", 2);
    for doc in [&sig, &sbom] {
        let d = Digest::of(doc.as_bytes());
        let (status, headers, _) = h
            .call(
                "PUT",
                &format!("/v2/app/manifests/{d}"),
                &ct,
                doc.as_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers["oci-subject"], image_digest.to_string().as_str());
    }

    let (status, headers, body) = h
        .call(
            "GET",
            &format!("/v2/app/referrers/{image_digest}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let (_, headers, body) = h
        .call(
            "GET",
            &format!("/v2/app/referrers/{image_digest}?artifactType=application/vnd.example.sbom"),
            &[],
            b"",
        )
        .await;
    assert_eq!(headers["oci-filters-applied"], "artifactType");
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let only = index["manifests"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(
        only[0]["digest"],
        Digest::of(sbom.as_bytes()).to_string().as_str()
    );
    assert_eq!(only[0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(only[0]["annotations"]["n"], "2");

    // A deleted referrer is no longer listed; an unknown subject has an empty list.
    h.call(
        "DELETE",
        &format!("/v2/app/manifests/{}", Digest::of(sig.as_bytes())),
        &[],
        b"",
    )
    .await;
    let (_, _, body) = h
        .call(
            "GET",
            &format!("/v2/app/referrers/{image_digest}"),
            &[],
            b"",
        )
        .await;
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let (status, _, body) = h
        .call(
            "GET",
            &format!("/v2/app/referrers/{}", Digest::of(b"x")),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["manifests"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn catalog_lists_repositories_with_pages() {
    let h = Harness::new();
    for name in ["b/nested/deep", "a", "c"] {
        let config = h.blob(name, b"{}").await;
        let (status, _, _) = h
            .call(
                "PUT",
                &format!("/v2/{name}/manifests/t"),
                &[("content-type", OCI_MANIFEST)],
                manifest(&config, &[]).as_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // A repository with only an unfinished push is not listed.
    h.blob("uploading-only", b"x").await;
    let (_, _, body) = h.call("GET", "/v2/_catalog", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["a", "b/nested/deep", "c"])
    );
    let (_, headers, body) = h.call("GET", "/v2/_catalog?n=1&last=a", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["b/nested/deep"]));
    assert_eq!(
        headers["link"],
        "</v2/_catalog?n=1&last=b/nested/deep>; rel=\"next\""
    );
}

#[tokio::test]
async fn accept_negotiation_serves_as_stored_or_not_at_all() {
    let h = Harness::new();
    let config = h.blob("n", b"{}").await;
    let body = manifest(&config, &[]);
    h.call(
        "PUT",
        "/v2/n/manifests/v1",
        &[("content-type", OCI_MANIFEST)],
        body.as_bytes(),
    )
    .await;
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    for (accept, want) in [
        (None, StatusCode::OK),
        (Some(format!("{docker}, {OCI_MANIFEST}")), StatusCode::OK),
        (Some(format!("{OCI_MANIFEST};q=0.9")), StatusCode::OK),
        (Some("*/*".to_string()), StatusCode::OK),
        (Some(docker.to_string()), StatusCode::NOT_FOUND),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", a.as_str())).collect();
        let (status, _, got) = h.call("GET", "/v2/n/manifests/v1", &headers, b"").await;
        assert_eq!(status, want, "{accept:?}");
        if want == StatusCode::NOT_FOUND {
            assert_eq!(code(&got), "MANIFEST_UNKNOWN");
        }
    }
}

/// A PUT is typed by the rule the client reads with (`wire::manifest_media_type`): the
/// document's `mediaType`, then a manifest `Content-Type`, then unambiguous fields.
#[tokio::test]
async fn manifest_puts_are_typed_by_the_wire_rule() {
    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    let h = Harness::new();
    let config = h.blob("t", b"{}").await;
    let typed = manifest(&config, &[]);
    let untyped = typed.replacen(&format!(r#""mediaType":"{OCI_MANIFEST}","#), "", 1);
    assert_ne!(typed, untyped);
    let ambiguous = untyped.replacen(r#""layers":[]"#, r#""layers":[],"manifests":[]"#, 1);
    let (typed, untyped, ambiguous) = (typed.as_str(), untyped.as_str(), ambiguous.as_str());
    let cases = [
        // Neither mediaType nor Content-Type: an OCI manifest by its fields.
        ("a", untyped, None, StatusCode::CREATED, Some(OCI_MANIFEST)),
        // A generic Content-Type does not contradict the document.
        (
            "b",
            typed,
            Some("application/json"),
            StatusCode::CREATED,
            Some(OCI_MANIFEST),
        ),
        // Without mediaType, a manifest Content-Type says which.
        (
            "c",
            untyped,
            Some(DOCKER_MANIFEST),
            StatusCode::CREATED,
            Some(DOCKER_MANIFEST),
        ),
        (
            "d",
            typed,
            Some(DOCKER_MANIFEST),
            StatusCode::BAD_REQUEST,
            None,
        ),
        ("e", ambiguous, None, StatusCode::BAD_REQUEST, None),
        (
            "f",
            typed,
            Some("application/vnd.example+json"),
            StatusCode::CREATED,
            Some(OCI_MANIFEST),
        ),
    ];
    for (tag, body, content_type, want, stored) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let uri = format!("/v2/t/manifests/{tag}");
        let (status, _, got) = h.call("PUT", &uri, &headers, body.as_bytes()).await;
        assert_eq!(status, want, "{tag}: {}", String::from_utf8_lossy(&got));
        if status != StatusCode::CREATED {
            assert_eq!(code(&got), "MANIFEST_INVALID", "{tag}");
        }
        let (status, headers, _) = h.call("GET", &uri, &[], b"").await;
        match stored {
            Some(media_type) => {
                assert_eq!(status, StatusCode::OK, "{tag}");
                assert_eq!(headers["content-type"], media_type, "{tag}");
            }
            None => assert_eq!(status, StatusCode::NOT_FOUND, "{tag}"),
        }
    }
}
