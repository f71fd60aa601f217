//! Blobs and uploads: monolithic, chunked, mounts, ranges and their errors.

use super::*;

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
async fn only_blobs_that_are_there_are_claimed_against_gc() {
    // HEADs and mounts of digests the registry does not hold must leave no claim marker
    // behind: otherwise any reader could make the registry write a file per request.
    let h = Harness::new();
    let held = h.blob("a", b"held").await;
    let missing = Digest::of(b"missing");
    let (status, _, _) = h
        .call("HEAD", &format!("/v2/a/blobs/{missing}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = h
        .call(
            "POST",
            &format!("/v2/b/blobs/uploads/?mount={missing}&from=a"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "not mountable: an upload");
    let told = h._dir.path().join("r/gc/told/blobs/sha256");
    let marker = |d: &Digest| told.join(&d.hex()[..2]).join(d.hex());
    assert!(!marker(&missing).exists());

    let (status, _, _) = h
        .call("HEAD", &format!("/v2/a/blobs/{held}"), &[], b"")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(marker(&held).exists(), "a HEAD 200 is a claim");
}
