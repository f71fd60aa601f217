//! The router in-process, request by request, with its status codes, headers and errors.

use axum::{body::Body, http::Request};
use base64::Engine as _;
use http_body_util::BodyExt;
use kiln_store::Digest;
use tower::ServiceExt;

use super::*;

struct Harness {
    _dir: tempfile::TempDir,
    app: Router,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(&dir.path().join("r")).unwrap();
        Harness {
            _dir: dir,
            app: router(storage),
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, bytes)
    }

    /// Push a blob monolithically; returns its digest.
    async fn blob(&self, name: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let (status, _, _) = self
            .call(
                "POST",
                &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                &[],
                data,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        d
    }
}

fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

fn manifest(config: &Digest, layers: &[&Digest]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":1}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test]
async fn base_answers_with_the_api_version() {
    let h = Harness::new();
    let (status, headers, _) = h.call("GET", "/v2/", &[], b"").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
}

#[tokio::test]
async fn monolithic_blob_push_then_head_get_and_ranges() {
    let h = Harness::new();
    let d = h.blob("a/b/c", b"0123456789").await;
    let (status, headers, body) = h
        .call("HEAD", &format!("/v2/a/b/c/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(
        (
            status,
            headers["content-length"].to_str().unwrap(),
            body.len()
        ),
        (StatusCode::OK, "10", 0)
    );
    assert_eq!(headers["docker-content-digest"], d.to_string().as_str());
    let (status, _, body) = h
        .call("GET", &format!("/v2/a/b/c/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"0123456789"[..])
    );
    let (status, headers, body) = h
        .call(
            "GET",
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("range", "bytes=2-4")],
            b"",
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"234"[..])
    );
    assert_eq!(headers["content-range"], "bytes 2-4/10");
    let (status, _, _) = h
        .call(
            "GET",
            &format!("/v2/a/b/c/blobs/{d}"),
            &[("range", "bytes=20-")],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Another repository does not serve it until it is mounted there.
    let (status, _, body) = h
        .call("GET", &format!("/v2/other/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into())
    );
    let (status, headers, _) = h
        .call(
            "POST",
            &format!("/v2/other/blobs/uploads/?mount={d}&from=a/b/c"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["location"], format!("/v2/other/blobs/{d}").as_str());
    let (status, _, _) = h
        .call("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::OK);
    // Delete from one repository.
    let (status, _, _) = h
        .call("DELETE", &format!("/v2/other/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = h
        .call("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_digest_is_digest_invalid_and_stores_nothing() {
    let h = Harness::new();
    let claimed = Digest::of(b"claimed");
    let (status, _, body) = h
        .call(
            "POST",
            &format!("/v2/x/blobs/uploads/?digest={claimed}"),
            &[],
            b"actual",
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );
    let (status, _, _) = h
        .call("HEAD", &format!("/v2/x/blobs/{claimed}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chunked_upload_with_its_error_cases() {
    let h = Harness::new();
    let (status, headers, _) = h
        .call("POST", "/v2/team/app/blobs/uploads/", &[], b"")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/v2/team/app/blobs/uploads/"),
        "{location}"
    );

    let (status, headers, _) = h
        .call("PATCH", &location, &[("content-range", "0-2")], b"abc")
        .await;
    assert_eq!(
        (status, headers["range"].to_str().unwrap()),
        (StatusCode::ACCEPTED, "0-2")
    );
    let (status, headers, _) = h.call("PATCH", &location, &[], b"def").await;
    assert_eq!(
        (status, headers["range"].to_str().unwrap()),
        (StatusCode::ACCEPTED, "0-5")
    );
    // Out of order and overlapping chunks: 416 with where the upload stands.
    for range in ["10-12", "3-5"] {
        let (status, headers, _) = h
            .call("PATCH", &location, &[("content-range", range)], b"xyz")
            .await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(headers["range"], "0-5");
        assert_eq!(headers["location"], location.as_str());
    }
    let (status, headers, _) = h.call("GET", &location, &[], b"").await;
    assert_eq!(
        (status, headers["range"].to_str().unwrap()),
        (StatusCode::NO_CONTENT, "0-5")
    );
    // The session belongs to its repository.
    let elsewhere = location.replace("/team/app/", "/team/other/");
    let (status, _, body) = h.call("GET", &elsewhere, &[], b"").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );

    let wrong = Digest::of(b"abcdefXYZ");
    let (status, _, body) = h
        .call("PUT", &format!("{location}?digest={wrong}"), &[], b"ghi")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );

    let right = Digest::of(b"abcdefghi");
    // The failed PUT left the session as it was: send the last piece again.
    let (status, headers, _) = h
        .call("PUT", &format!("{location}?digest={right}"), &[], b"ghi")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["docker-content-digest"], right.to_string().as_str());
    let (_, _, body) = h
        .call("GET", &format!("/v2/team/app/blobs/{right}"), &[], b"")
        .await;
    assert_eq!(body, b"abcdefghi");
    let (status, _, body) = h.call("GET", &location, &[], b"").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );

    // Cancel.
    let (_, headers, _) = h
        .call("POST", "/v2/team/app/blobs/uploads/", &[], b"")
        .await;
    let location = headers["location"].to_str().unwrap().to_string();
    let (status, _, _) = h.call("DELETE", &location, &[], b"").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = h.call("PATCH", &location, &[], b"x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_validation() {
    let h = Harness::new();
    let config = h.blob("app", b"{}").await;
    let layer = h.blob("app", b"layer").await;
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
    let cases: Vec<(String, &str, Vec<u8>, StatusCode, &str)> = vec![
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
async fn healthz_and_metrics() {
    let h = Harness::new();
    let (status, _, body) = h.call("GET", "/healthz", &[], b"").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok\n"[..]));
    h.blob("m", b"some bytes").await;
    h.call("POST", "/v2/m/blobs/uploads/", &[], b"").await;
    h.call("GET", "/v2/m/manifests/none", &[], b"").await;
    let (status, headers, body) = h.call("GET", "/metrics", &[], b"").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"kiln_registry_requests_total{route="upload",method="POST",status="201"} 1"#,
        r#"kiln_registry_requests_total{route="upload",method="POST",status="202"} 1"#,
        r#"kiln_registry_requests_total{route="manifest",method="GET",status="404"} 1"#,
        "kiln_registry_uploads_started_total 1",
        "kiln_registry_blobs_stored_total 1",
        "kiln_registry_bytes_received_total 10",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn basic_auth_with_a_challenge_and_anonymous_reads() {
    // What `htpasswd -Bbn alice secret` prints (cost 5 keeps the test fast).
    let hash = bcrypt::hash_with_result("secret", 5)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let htpasswd = auth::Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "test").unwrap();
    for anonymous_read in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(&dir.path().join("r")).unwrap();
        let auth = AuthConfig {
            htpasswd: Some(auth::Htpasswd::parse(&format!("alice:{hash}\n"), "test").unwrap()),
            anonymous_read,
        };
        let h = Harness {
            _dir: dir,
            app: router_with_auth(storage, auth),
        };
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:secret")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:wrong")
        );

        let (status, headers, body) = h.call("POST", "/v2/x/blobs/uploads/", &[], b"").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into())
        );
        assert_eq!(headers["www-authenticate"], "Basic realm=\"kiln registry\"");
        let (status, _, _) = h
            .call(
                "POST",
                "/v2/x/blobs/uploads/",
                &[("authorization", &bad)],
                b"",
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = h
            .call(
                "POST",
                "/v2/x/blobs/uploads/",
                &[("authorization", &good)],
                b"",
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, _, _) = h.call("GET", "/v2/", &[], b"").await;
        let want = if anonymous_read {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, want, "anonymous read = {anonymous_read}");
        let (status, _, _) = h.call("GET", "/healthz", &[], b"").await;
        assert_eq!(status, StatusCode::OK, "probes need no credentials");
    }
    assert!(htpasswd.check("alice", "secret") && htpasswd.check("alice", "secret"));
    assert!(!htpasswd.check("bob", "secret"));
    assert!(
        auth::Htpasswd::parse("carol:{SHA}abc\n", "f").is_err(),
        "only bcrypt"
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
