//! The server under abuse: made-up methods and paths, floods of wrong passwords, odd but
//! valid Authorization headers, storage failures that must not show server paths.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::*;

#[tokio::test]
async fn metrics_labels_stay_a_closed_set() {
    let h = Harness::new();
    for i in 0..300 {
        // Any token is a method, and the metrics layer sees it before any auth.
        let method = format!("M{i}{}", "X".repeat(1024));
        h.call(&method, &format!("/v2/n{i}/blobs/uploads/"), &[], b"")
            .await;
        let long = "p".repeat(1000);
        h.call("GET", &format!("/elsewhere/{i}/{long}"), &[], b"")
            .await;
        h.call("GET", &format!("/v2/repo{i}/manifests/t{i}"), &[], b"")
            .await;
        h.call("DELETE", &format!("/v2/r/blobs/sha256:{i:064x}"), &[], b"")
            .await;
    }
    let (status, _, body) = h.call("GET", "/metrics", &[], b"").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.len() < 4096,
        "{} bytes of metrics:\n{text}",
        text.len()
    );
    let routes = [
        "base",
        "catalog",
        "tags",
        "manifest",
        "blob",
        "upload",
        "referrers",
        "healthz",
        "metrics",
        "other",
    ];
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    let label = |line: &str, name: &str| -> String {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..].split('"').next().unwrap().to_string()
    };
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kiln_registry_requests_total{"))
        .collect();
    for line in &series {
        assert!(routes.contains(&label(line, "route").as_str()), "{line}");
        assert!(methods.contains(&label(line, "method").as_str()), "{line}");
    }
    assert!(
        series.iter().any(
            |l| l.starts_with(r#"kiln_registry_requests_total{route="upload",method="other","#)
        ),
        "made-up methods are counted, as other:\n{text}"
    );
}

#[tokio::test]
async fn basic_scheme_in_any_case_with_extra_spaces() {
    let users = htpasswd_line("alice", "secret", 4);
    let h = Harness::with_auth(AuthConfig {
        htpasswd: Some(Htpasswd::parse(&users, "test").unwrap()),
        ..AuthConfig::default()
    });
    let token = basic("alice:secret")["Basic ".len()..].to_string();
    for header in [
        format!("Basic {token}"),
        format!("basic {token}"),
        format!("BASIC {token}"),
        format!("bAsIc {token}"),
        format!("Basic    {token}  "),
    ] {
        let (status, _, body) = h
            .call(
                "POST",
                "/v2/x/blobs/uploads/",
                &[("authorization", &header)],
                b"",
            )
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{header:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    for header in [format!("Bearer {token}"), format!("Basicx {token}"), token] {
        let (status, _, _) = h
            .call(
                "POST",
                "/v2/x/blobs/uploads/",
                &[("authorization", &header)],
                b"",
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
    }
}

/// A real server on loopback with one async worker (so that one blocked worker would show),
/// stopped when dropped.
struct Served {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(auth: AuthConfig) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(&dir.path().join("r")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                serve(listener, storage, auth, None, shutdown)
                    .await
                    .unwrap();
            });
        });
        Served {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_passwords_is_throttled_and_starves_no_one() {
    // Cost 12, as `htpasswd -B` defaults to in many setups: ~0.25 s of one core per check.
    let users = htpasswd_line("alice", "secret", 12);
    let server = Served::start(AuthConfig {
        htpasswd: Some(Htpasswd::parse(&users, "test").unwrap()),
        ..AuthConfig::default()
    });
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Something to pull; the right password is checked once here and remembered.
    // One byte: the test manifests give every layer the size 1, and a size that disagrees
    // with the blob is refused.
    let layer = b"L".to_vec();
    let config = b"{}".to_vec();
    for data in [&layer, &config] {
        let d = Digest::of(data);
        let response = client
            .post(format!("{base}/v2/p/blobs/uploads/?digest={d}"))
            .basic_auth("alice", Some("secret"))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let manifest = manifest(&Digest::of(&config), &[&Digest::of(&layer)]);
    let response = client
        .put(format!("{base}/v2/p/manifests/1"))
        .basic_auth("alice", Some("secret"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // 100 wrong passwords, 8 at a time.
    let flood = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..100)
                .map(|i| {
                    let request = client
                        .get(format!("{base}/v2/p/manifests/1"))
                        .basic_auth("alice", Some(format!("wrong{i}")));
                    async move {
                        let response = request.send().await.unwrap();
                        let status = response.status();
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                        let body = response.bytes().await.unwrap();
                        (status, retry_after, body)
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };

    // Meanwhile probes and an authorised pull, each timed; bounded in count and time.
    let started = Instant::now();
    let (mut slowest_probe, mut slowest_pull, mut rounds) = (Duration::ZERO, Duration::ZERO, 0);
    while rounds < 5 || (!flood.is_finished() && started.elapsed() < Duration::from_secs(60)) {
        rounds += 1;
        let t = Instant::now();
        let probe = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(probe.status(), StatusCode::OK);
        slowest_probe = slowest_probe.max(t.elapsed());
        let t = Instant::now();
        let pulled = client
            .get(format!("{base}/v2/p/manifests/1"))
            .basic_auth("alice", Some("secret"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(pulled.status(), StatusCode::OK);
        let blob = client
            .get(format!("{base}/v2/p/blobs/{}", Digest::of(&layer)))
            .basic_auth("alice", Some("secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(blob.bytes().await.unwrap().as_ref(), &layer[..]);
        slowest_pull = slowest_pull.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answers = flood.await.unwrap();
    assert!(
        slowest_probe < Duration::from_secs(2),
        "/healthz took {slowest_probe:?} during the flood"
    );
    assert!(
        slowest_pull < Duration::from_secs(2),
        "an authorised pull took {slowest_pull:?} during the flood"
    );

    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let denied = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused.len() + denied, 100, "every wrong password fails");
    // The default budget: 10 checks a minute, one of them spent on the right password.
    assert!(denied <= 12, "{denied} wrong passwords were checked");
    assert!(refused.len() >= 80, "{} got 429", refused.len());
    for (_, retry_after, body) in refused {
        let seconds = retry_after.expect("429 says when to retry");
        assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
        assert_eq!(code(body), "TOOMANYREQUESTS");
    }
}

#[tokio::test]
async fn an_internal_error_shows_a_request_id_not_a_server_path() {
    let h = Harness::new();
    let root = h._dir.path().join("r");
    // Root ignores permissions; a file where a directory should be stops it all the same.
    std::fs::remove_dir_all(root.join("uploads")).ok();
    std::fs::write(root.join("uploads"), b"not a directory").unwrap();
    let (status, headers, body) = h.call("POST", "/v2/x/blobs/uploads/", &[], b"").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8(body.clone()).unwrap();
    let shown = h._dir.path().to_str().unwrap();
    assert!(!text.contains(shown), "a server path in {text}");
    assert!(!text.contains("uploads"), "a storage path in {text}");
    let id = headers[request_id::HEADER].to_str().unwrap();
    assert!(text.contains(id), "request id {id} missing in {text}");
    assert_eq!(code(&body), "UNKNOWN");
}
