//! Operations: health, metrics, authentication.

use super::*;

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
    let htpasswd = Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "test").unwrap();
    for anonymous_read in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(&dir.path().join("r")).unwrap();
        let auth = AuthConfig {
            htpasswd: Some(Htpasswd::parse(&format!("alice:{hash}\n"), "test").unwrap()),
            anonymous_read,
            ..AuthConfig::default()
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
    assert!(!htpasswd.known_good("alice", "secret"));
    assert!(htpasswd.check("alice", "secret").await && htpasswd.known_good("alice", "secret"));
    assert!(!htpasswd.check("alice", "wrong").await);
    assert!(!htpasswd.check("bob", "secret").await);
    assert!(
        Htpasswd::parse("carol:{SHA}abc\n", "f").is_err(),
        "only bcrypt"
    );
}
