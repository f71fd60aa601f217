//! The registry client's retries and messages: blob GETs spaced by a growing pause (or the
//! registry's `Retry-After`), a 201 naming another blob refused, failures after a redirect
//! blamed on the host that failed, a media type the document contradicts named as such,
//! and TLS failures told in words with the fix. Every server is on 127.0.0.1.

mod common;

use std::{
    process::Output,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    Kiln, require_tool,
    scripted::{Scripted, Seen, TestImage, now, reply, run_within, sha256},
    servers::{Registry, free_port},
    sh, tar_of_files,
};

const LIMIT: Duration = Duration::from_secs(90);

fn kiln_run(kiln: &Kiln, args: &[&str]) -> Output {
    let mut cmd = kiln.cmd();
    cmd.env("DOCKER_CONFIG", kiln.scratch("docker-empty"))
        .args(args);
    run_within(cmd, LIMIT)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A registry serving `image`, whose layer GETs get `fail(n)` for the n-th GET (from 0)
/// while it returns Some; the instants of every layer GET are kept.
fn flaky_layer(
    server: &Scripted,
    image: Arc<TestImage>,
    fail: impl Fn(usize) -> Option<axum::response::Response> + Send + Sync + 'static,
) -> Arc<Mutex<Vec<Instant>>> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen_times = times.clone();
    server.script(move |seen: Seen| {
        if seen.path() == "/v2/" {
            return now(reply(200, &[], ""));
        }
        if seen.method == "GET" && seen.path().ends_with(&image.layer_digest) {
            let mut times = seen_times.lock().unwrap();
            times.push(Instant::now());
            if let Some(response) = fail(times.len() - 1) {
                return now(response);
            }
        }
        now(image.serve(&seen).unwrap_or_else(|| reply(404, &[], "")))
    });
    times
}

fn image() -> Arc<TestImage> {
    Arc::new(TestImage::new(&[("hello.txt".into(), b"hello".to_vec())]))
}

#[test]
fn blob_gets_are_retried_after_growing_pauses() {
    let server = Scripted::new();
    let times = flaky_layer(&server, image(), |n| {
        (n < 3).then(|| reply(500, &[], "try later"))
    });
    let kiln = Kiln::new();
    let out = kiln_run(&kiln, &["pull", &format!("{}/team/app:1", server.addr)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 4, "four attempts");
    // Pauses of at least 125, 250 and 500 ms (half of each exponential step).
    let waited = times[3] - times[0];
    assert!(
        waited >= Duration::from_millis(800),
        "retried after {waited:?}"
    );
}

#[test]
fn retry_after_is_honoured() {
    let server = Scripted::new();
    let times = flaky_layer(&server, image(), |n| {
        (n == 0).then(|| reply(503, &[("retry-after", "2")], "busy"))
    });
    let kiln = Kiln::new();
    let out = kiln_run(&kiln, &["pull", &format!("{}/team/app:1", server.addr)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 2);
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
}

#[test]
fn a_blob_put_answered_with_another_digest_fails() {
    let kiln = Kiln::new();
    let tar = kiln.file(
        "rootfs.tar",
        &tar_of_files(&[("a.txt".into(), b"a".to_vec())]),
    );
    kiln.ok(&["import", "--compression", "none", &tar, "app:1"]);
    let server = Scripted::new();
    let other = sha256(b"some other blob");
    server.script(move |seen: Seen| {
        let path = seen.path().to_string();
        now(match seen.method.as_str() {
            "GET" if path == "/v2/" => reply(200, &[], ""),
            "HEAD" => reply(404, &[], ""),
            "POST" => reply(202, &[("location", "/v2/team/app/blobs/uploads/1")], ""),
            "PUT" if path.contains("/blobs/uploads/") => {
                reply(201, &[("docker-content-digest", other.as_str())], "")
            }
            "PUT" => reply(201, &[("docker-content-digest", &sha256(&seen.body))], ""),
            _ => reply(404, &[], ""),
        })
    });
    let out = kiln_run(
        &kiln,
        &["push", "app:1", &format!("{}/team/app:1", server.addr)],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("says it stored sha256:"), "{err}");
    assert_eq!(
        server.count("PUT", "/manifests/"),
        0,
        "a manifest was pushed"
    );
}

#[test]
fn a_redirect_to_a_closed_port_names_that_host() {
    let server = Scripted::new();
    let image = image();
    let closed = format!("127.0.0.1:{}", free_port());
    let target = closed.clone();
    let layer = image.layer_digest.clone();
    server.script(move |seen: Seen| {
        if seen.path().ends_with(&layer) {
            let location = format!("http://{target}/blob");
            return now(reply(307, &[("location", location.as_str())], ""));
        }
        if seen.path() == "/v2/" {
            return now(reply(200, &[], ""));
        }
        now(image.serve(&seen).unwrap_or_else(|| reply(404, &[], "")))
    });
    let kiln = Kiln::new();
    let out = kiln_run(&kiln, &["pull", &format!("{}/team/app:1", server.addr)]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "cannot connect to {closed} (where {}",
            server.addr
        )),
        "{err} (closed: {closed}, registry: {})",
        server.addr
    );
}

#[test]
fn a_media_type_the_document_contradicts_is_named() {
    let image = image();
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let server = Scripted::new();
    server.script(move |seen: Seen| {
        // Content-Type and mediaType agree (an index); the document is an image manifest.
        now(if seen.path().contains("/manifests/") {
            reply(
                200,
                &[("content-type", "application/vnd.oci.image.index.v1+json")],
                manifest.clone(),
            )
        } else if seen.path() == "/v2/" {
            reply(200, &[], "")
        } else {
            image.serve(&seen).unwrap_or_else(|| reply(404, &[], ""))
        })
    });
    let kiln = Kiln::new();
    let out = kiln_run(&kiln, &["pull", &format!("{}/team/app:1", server.addr)]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("its media type is application/vnd.oci.image.index.v1+json, but the document is an image manifest"),
        "{err}"
    );
    assert!(!err.contains("has no image for"), "{err}");
}

#[test]
fn tls_failures_are_told_with_the_fix() {
    require_tool("openssl");
    let kiln = Kiln::new();
    let d = kiln.scratch("tls");
    std::fs::create_dir_all(&d).unwrap();
    // A CA used as the server's own certificate; a CA and a server certificate it signs
    // for 127.0.0.1; and one it signs for another name.
    sh(&format!(
        "cd {} && \
         openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
           -addext subjectAltName=IP:127.0.0.1 -keyout self.key -out self.crt 2>/dev/null && \
         openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kiln-test-ca \
           -keyout ca.key -out ca.crt 2>/dev/null && \
         for name in ip:IP:127.0.0.1 other:DNS:elsewhere.test; do \
           n=${{name%%:*}}; san=${{name#*:}}; \
           openssl req -newkey rsa:2048 -nodes -subj /CN=$n -keyout $n.key -out $n.csr \
             2>/dev/null && \
           printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n' $san > $n.ext && \
           openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
             -extfile $n.ext -out $n.crt 2>/dev/null; \
         done",
        d.display()
    ));
    let path = |f: &str| d.join(f).to_str().unwrap().to_string();
    let serve = |name: &str| {
        Registry::start_with(
            &kiln,
            &[
                "--tls-cert",
                &path(&format!("{name}.crt")),
                "--tls-key",
                &path(&format!("{name}.key")),
            ],
        )
    };
    let pull = |registry: &Registry, extra: &[&str]| {
        let image = format!("{}/x/y:1", registry.addr);
        let mut args = vec!["pull", "--tls-verify"];
        args.extend_from_slice(extra);
        args.push(&image);
        let out = kiln_run(&Kiln::new(), &args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(!err.contains("CaUsedAsEndEntity"), "{err}");
        assert!(!err.contains("InvalidContentType"), "{err}");
        err
    };
    let ca = path("ca.crt");
    let self_signed = serve("self");
    let err = pull(&self_signed, &["--ca-cert", &path("self.crt")]);
    assert!(
        err.contains("presents a CA certificate as its own"),
        "{err}"
    );
    let signed = serve("ip");
    let err = pull(&signed, &[]);
    assert!(err.contains("--ca-cert FILE"), "{err}");
    let misnamed = serve("other");
    let err = pull(&misnamed, &["--ca-cert", &ca]);
    assert!(err.contains("does not name the host"), "{err}");
    let plain = Registry::start(&kiln);
    let err = pull(&plain, &[]);
    assert!(err.contains("does not speak TLS"), "{err}");
}

#[test]
fn the_login_ping_asks_for_no_repository_scope() {
    let server = Scripted::new();
    let realm = format!("http://{}/token", server.addr);
    server.script(move |seen: Seen| {
        now(match seen.path() {
            "/token" => reply(200, &[], r#"{"token":"t"}"#),
            "/v2/" if seen.authorization().as_deref() == Some("Bearer t") => reply(200, &[], ""),
            _ => {
                let challenge = format!("Bearer realm=\"{realm}\",service=\"test\"");
                reply(401, &[("www-authenticate", challenge.as_str())], "")
            }
        })
    });
    let kiln = Kiln::new();
    let out = kiln_run(&kiln, &["login", "-u", "ci", "-p", "pw", &server.addr]);
    assert!(out.status.success(), "{}", stderr(&out));
    let asked: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.path() == "/token")
        .map(|s| s.uri.clone())
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(!asked[0].contains("scope="), "{asked:?}");
}
