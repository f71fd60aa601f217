//! kiln's registry client against registries that misbehave on purpose: scripted servers
//! on 127.0.0.1 (tests/common/scripted.rs) that send credentials elsewhere, send without
//! end, go silent or drip, take upload chunks without keeping them, and fan indexes out.
//! Every command runs under a time limit, every server sends a bounded amount.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use common::{
    Kiln,
    scripted::{
        Documents, INDEX, MANIFEST, Scripted, Seen, TestImage, docker_config, drip, flood,
        index_of, nested, now, reply, run_within, serve_documents, sha256,
    },
    tar_of_files,
};
use futures::FutureExt as _;

/// No command here should take long; one that does is waiting forever.
const LIMIT: Duration = Duration::from_secs(90);
/// Short timeouts, so that the timeout tests run in seconds.
const TIMEOUTS: [&str; 4] = ["--connect-timeout", "1s", "--read-timeout", "2s"];

fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

/// Run kiln with `docker_config` as its credentials directory (an empty one if none).
fn kiln_run(kiln: &Kiln, docker_config: Option<&Path>, args: &[&str]) -> Output {
    let empty = kiln.scratch("docker-empty");
    let mut cmd = kiln.cmd();
    cmd.env("DOCKER_CONFIG", docker_config.unwrap_or(&empty))
        .args(args);
    run_within(cmd, LIMIT)
}

fn succeeded(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stderr}");
}

fn failed(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} succeeded but should not have"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("{what}:\n{stderr}");
    stderr
}

/// A store holding one small image, `app:1`, whose layer is `size` bytes of data.
fn kiln_with_image(size: usize) -> Kiln {
    let kiln = Kiln::new();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    let tar = kiln.file("rootfs.tar", &tar_of_files(&[("data.bin".into(), data)]));
    kiln.ok(&["import", "--compression", "none", &tar, "app:1"]);
    kiln
}

/// A registry that takes pushes: HEAD says no blob, POST opens a session whose Location
/// `location` makes, PUT of a manifest succeeds. Anything needs `auth` when given.
fn push_target(
    server: &Scripted,
    auth: Option<String>,
    location: impl Fn() -> String + Send + Sync + 'static,
) {
    server.script(move |seen: Seen| {
        if let Some(auth) = &auth
            && seen.authorization().as_deref() != Some(auth.as_str())
        {
            return now(reply(401, &[("www-authenticate", "Basic realm=\"a\"")], ""));
        }
        let path = seen.path().to_string();
        now(match seen.method.as_str() {
            "HEAD" | "GET" if path == "/v2/" => reply(200, &[], ""),
            "HEAD" => reply(404, &[], ""),
            "POST" if path.ends_with("/blobs/uploads/") => {
                reply(202, &[("location", &location())], "")
            }
            "PUT" if path.contains("/manifests/") => {
                reply(201, &[("docker-content-digest", &sha256(&seen.body))], "")
            }
            _ => reply(404, &[], ""),
        })
    });
}

// Point 3 (a): an upload Location on another host gets no credentials.
#[test]
fn upload_location_on_another_host_gets_no_credentials() {
    let kiln = kiln_with_image(4096);
    let config = kiln.scratch("docker");
    let (user, password) = ("ci", "s3cret");

    // B takes the upload without asking for anything.
    let a = Scripted::new();
    let b = Scripted::new();
    docker_config(&config, &a.addr, user, password);
    let b_addr = b.addr.clone();
    push_target(&a, Some(basic(user, password)), move || {
        format!("http://{b_addr}/upload/1")
    });
    b.script(|seen: Seen| {
        now(match seen.method.as_str() {
            "PUT" => reply(201, &[], ""),
            _ => reply(404, &[], ""),
        })
    });
    let out = kiln_run(
        &kiln,
        Some(&config),
        &["push", "app:1", &format!("{}/team/app:1", a.addr)],
    );
    succeeded(&out, "push with uploads on another host");
    assert!(b.count("PUT", "/upload/1") >= 2, "{:?}", b.seen());
    assert_eq!(
        b.authorizations(),
        Vec::<String>::new(),
        "B got credentials"
    );
    assert!(
        a.authorizations()
            .iter()
            .all(|h| *h == basic(user, password)),
        "A got something other than its own credentials"
    );

    // B asks for credentials: refused with a clear message, still none sent.
    let a = Scripted::new();
    let b = Scripted::new();
    docker_config(&config, &a.addr, user, password);
    let b_addr = b.addr.clone();
    push_target(&a, Some(basic(user, password)), move || {
        format!("http://{b_addr}/upload/1")
    });
    b.script(|_| now(reply(401, &[("www-authenticate", "Basic realm=\"b\"")], "")));
    let out = kiln_run(
        &kiln,
        Some(&config),
        &["push", "app:1", &format!("{}/team/app:1", a.addr)],
    );
    let stderr = failed(&out, "push whose upload host wants credentials");
    assert!(
        stderr.contains(&b.addr) && stderr.contains("asks for credentials"),
        "{stderr}"
    );
    assert_eq!(
        b.authorizations(),
        Vec::<String>::new(),
        "B got credentials"
    );

    // Not http or https: refused before anything is sent there.
    let a = Scripted::new();
    docker_config(&config, &a.addr, user, password);
    push_target(&a, Some(basic(user, password)), || {
        "ftp://127.0.0.1:1/upload/1".into()
    });
    let out = kiln_run(
        &kiln,
        Some(&config),
        &["push", "app:1", &format!("{}/team/app:1", a.addr)],
    );
    let stderr = failed(&out, "push to an ftp Location");
    assert!(
        stderr.contains("ftp:") && stderr.contains("only http and https"),
        "{stderr}"
    );
}

// Point 3 (b): a redirect to another host carries no credentials, and a challenge from
// there is never answered with them (nor a token from there sent back).
#[test]
fn redirects_to_another_host_get_no_credentials() {
    let kiln = Kiln::new();
    let config = kiln.scratch("docker");
    let (user, password) = ("ci", "s3cret");
    let image = Arc::new(TestImage::new(&[("hello.txt".into(), b"hello".to_vec())]));

    // A needs Basic and redirects blob GETs to B, which serves them (a CDN): reqwest must
    // drop A's Authorization on the way.
    let a = Scripted::new();
    let b = Scripted::new();
    docker_config(&config, &a.addr, user, password);
    let (b_addr, served) = (b.addr.clone(), image.clone());
    a.script(move |seen: Seen| {
        if seen.authorization() != Some(basic(user, password)) {
            return now(reply(401, &[("www-authenticate", "Basic realm=\"a\"")], ""));
        }
        if let Some(digest) = seen.path().split("/blobs/").nth(1) {
            let to = format!("http://{b_addr}/cdn/{digest}");
            return now(reply(307, &[("location", &to)], ""));
        }
        now(served.serve(&seen).unwrap_or_else(|| reply(200, &[], "")))
    });
    let served = image.clone();
    b.script(move |seen: Seen| {
        let digest = seen.path().trim_start_matches("/cdn/");
        now(match served.blobs.get(digest) {
            Some(blob) => reply(200, &[], blob.clone()),
            None => reply(404, &[], ""),
        })
    });
    let out = kiln_run(
        &kiln,
        Some(&config),
        &["pull", &format!("{}/team/app:1", a.addr)],
    );
    succeeded(&out, "pull with blobs redirected to another host");
    assert_eq!(b.count("GET", "/cdn/"), 2, "{:?}", b.seen());
    assert_eq!(
        b.authorizations(),
        Vec::<String>::new(),
        "B got A's credentials"
    );

    // A redirects (without asking for anything) to B, which challenges with a token
    // realm of its own: kiln must neither send A's credentials to B's token service nor
    // B's token to A.
    let a = Scripted::new();
    let b = Scripted::new();
    docker_config(&config, &a.addr, user, password);
    let b_addr = b.addr.clone();
    a.script(move |seen: Seen| {
        now(match seen.path() {
            "/v2/" => reply(200, &[], ""),
            path => reply(307, &[("location", &format!("http://{b_addr}{path}"))], ""),
        })
    });
    let b_addr = b.addr.clone();
    b.script(move |seen: Seen| {
        now(if seen.path() == "/token" {
            reply(
                200,
                &[("content-type", "application/json")],
                r#"{"token":"b-token"}"#,
            )
        } else {
            let realm = format!("Bearer realm=\"http://{b_addr}/token\",service=\"b\"");
            reply(401, &[("www-authenticate", &realm)], "")
        })
    });
    let out = kiln_run(
        &kiln,
        Some(&config),
        &["pull", &format!("{}/team/app:1", a.addr)],
    );
    let stderr = failed(&out, "pull redirected to a host that wants credentials");
    assert!(
        stderr.contains(&b.addr) && stderr.contains("asks for credentials"),
        "{stderr}"
    );
    assert_eq!(b.count("GET", "/token"), 0, "B's token service was asked");
    assert_eq!(
        b.authorizations(),
        Vec::<String>::new(),
        "B got credentials"
    );
    assert_eq!(a.authorizations(), Vec::<String>::new(), "A got B's token");
}

// Point 4: bodies read whole are capped, and kiln stops reading.
#[test]
fn endless_error_and_token_bodies_are_cut_off() {
    let kiln = Kiln::new();
    // What each server sends at most: the cap and 64 MiB more.
    const EXTRA: u64 = 64 << 20;

    // A 404 whose body does not end.
    let a = Scripted::new();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    a.script(move |seen: Seen| {
        now(match seen.path() {
            "/v2/" => reply(200, &[], ""),
            _ => reply(404, &[], flood((64 << 10) + EXTRA, counter.clone())),
        })
    });
    let out = kiln_run(&kiln, None, &["pull", &format!("{}/team/app:1", a.addr)]);
    let stderr = failed(&out, "pull with an endless 404 body");
    assert!(stderr.contains("sent too much"), "{stderr}");
    let got = sent.load(Ordering::SeqCst);
    assert!(
        got < EXTRA / 2,
        "kiln read on: the server handed over {got} bytes"
    );

    // A manifest that does not end (the 4 MiB cap).
    let a = Scripted::new();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    a.script(move |seen: Seen| {
        now(match seen.path() {
            "/v2/" => reply(200, &[], ""),
            _ => reply(
                200,
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                flood((4 << 20) + EXTRA, counter.clone()),
            ),
        })
    });
    let out = kiln_run(&kiln, None, &["pull", &format!("{}/team/app:1", a.addr)]);
    let stderr = failed(&out, "pull with an endless manifest");
    assert!(stderr.contains("sent too much"), "{stderr}");
    assert!(sent.load(Ordering::SeqCst) < EXTRA / 2);

    // A token service whose answer does not end.
    let a = Scripted::new();
    let sent = Arc::new(AtomicU64::new(0));
    let (counter, addr) = (sent.clone(), a.addr.clone());
    a.script(move |seen: Seen| {
        now(if seen.path() == "/token" {
            reply(200, &[], flood((1 << 20) + EXTRA, counter.clone()))
        } else {
            let realm = format!("Bearer realm=\"http://{addr}/token\",service=\"a\"");
            reply(401, &[("www-authenticate", &realm)], "")
        })
    });
    let out = kiln_run(&kiln, None, &["pull", &format!("{}/team/app:1", a.addr)]);
    let stderr = failed(&out, "pull with an endless token answer");
    assert!(stderr.contains("sent too much"), "{stderr}");
    assert!(sent.load(Ordering::SeqCst) < EXTRA / 2);
}

// Point 5: connect and read timeouts, and the stall detector on blob bodies.
#[test]
fn silent_slow_and_stalled_registries_time_out() {
    let image = Arc::new(TestImage::new(&[("big.bin".into(), vec![7u8; 256 << 10])]));
    let layer = image.layer_digest.clone();
    let layer_size = image.blobs[&layer].len();

    // Each case: a server (or a listener that never answers), what kiln must say.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();

    let never_answers = Scripted::new();
    never_answers.script(|seen: Seen| {
        if seen.path() == "/v2/" {
            return now(reply(200, &[], ""));
        }
        async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            reply(500, &[], "")
        }
        .boxed()
    });

    let token_never_answers = Scripted::new();
    let addr = token_never_answers.addr.clone();
    token_never_answers.script(move |seen: Seen| {
        if seen.path() == "/token" {
            return async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                reply(500, &[], "")
            }
            .boxed();
        }
        let realm = format!("Bearer realm=\"http://{addr}/token\",service=\"a\"");
        now(reply(401, &[("www-authenticate", &realm)], ""))
    });

    // The layer drips: 1000 bytes, then a byte every 100 ms (at most a minute of it).
    let drips = Scripted::new();
    let (served, digest) = (image.clone(), layer.clone());
    drips.script(move |seen: Seen| {
        if seen.path().ends_with(&digest) {
            let head = served.blobs[&digest][..1000].to_vec();
            let length = served.blobs[&digest].len().to_string();
            let body = drip(head, Duration::from_millis(100), 600);
            return now(reply(200, &[("content-length", &length)], body));
        }
        now(served.serve(&seen).unwrap_or_else(|| reply(200, &[], "")))
    });

    // The layer stops half way, the connection left open.
    let stalls = Scripted::new();
    let (served, digest) = (image.clone(), layer.clone());
    stalls.script(move |seen: Seen| {
        if seen.path().ends_with(&digest) {
            let half = served.blobs[&digest][..layer_size / 2].to_vec();
            let body = drip(half, Duration::from_secs(120), 1);
            return now(reply(
                200,
                &[("content-length", &layer_size.to_string())],
                body,
            ));
        }
        now(served.serve(&seen).unwrap_or_else(|| reply(200, &[], "")))
    });

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "a silent listener",
            silent_addr.clone(),
            vec![&silent_addr, "GET"],
        ),
        (
            "a manifest never answered",
            never_answers.addr.clone(),
            vec![
                &never_answers.addr,
                "no answer to GET manifests/1 within 2 s",
            ],
        ),
        (
            "a token never answered",
            token_never_answers.addr.clone(),
            vec![&token_never_answers.addr, "no answer to a token request"],
        ),
        (
            "a dripping blob",
            drips.addr.clone(),
            vec![&drips.addr, "stalled", &layer],
        ),
        (
            "a stalled blob",
            stalls.addr.clone(),
            vec![&stalls.addr, "nothing for 2 s", &layer],
        ),
    ];
    std::thread::scope(|scope| {
        for (what, addr, needles) in &cases {
            scope.spawn(move || {
                let kiln = Kiln::new();
                let reference = format!("{addr}/team/app:1");
                let mut args = vec!["pull", reference.as_str()];
                args.extend(TIMEOUTS);
                let out = kiln_run(&kiln, None, &args);
                let stderr = failed(&out, what);
                assert!(stderr.contains("timed out"), "{what}: {stderr}");
                for needle in needles {
                    assert!(stderr.contains(needle), "{what}: no {needle:?} in {stderr}");
                }
            });
        }
    });
    drop(silent);
}

// Point 6: chunked uploads against a registry that keeps nothing, or claims too much.
#[test]
fn chunked_upload_gives_up_on_a_registry_that_keeps_nothing() {
    let kiln = kiln_with_image(64 << 10);
    for (range, needle) in [
        ("0-0", "made no progress"),
        ("0-99999999", "holds 100000000 bytes"),
    ] {
        let a = Scripted::new();
        let patches = Arc::new(AtomicUsize::new(0));
        let counter = patches.clone();
        a.script(move |seen: Seen| {
            let path = seen.path().to_string();
            let session = "/v2/team/app/blobs/uploads/s1";
            now(match seen.method.as_str() {
                "GET" if path == "/v2/" => reply(200, &[], ""),
                "HEAD" => reply(404, &[], ""),
                "POST" => reply(202, &[("location", session), ("range", "0-0")], ""),
                "PATCH" => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    reply(202, &[("location", session), ("range", range)], "")
                }
                "GET" if path == session => {
                    reply(204, &[("location", session), ("range", range)], "")
                }
                "PUT" if path == session => reply(201, &[], ""),
                "PUT" if path.contains("/manifests/") => {
                    reply(201, &[("docker-content-digest", &sha256(&seen.body))], "")
                }
                _ => reply(404, &[], ""),
            })
        });
        let dest = format!("{}/team/app:1", a.addr);
        let out = kiln_run(
            &kiln,
            None,
            &["push", "--chunk-size", "16KiB", "app:1", &dest],
        );
        let stderr = failed(
            &out,
            &format!("push against PATCH answers of Range {range}"),
        );
        assert!(stderr.contains(needle), "{stderr}");
        let sent = patches.load(Ordering::SeqCst);
        assert!((1..=40).contains(&sent), "{sent} PATCHes");
        // The upload was never completed without its bytes: no empty PUT.
        let empty_puts = a
            .seen()
            .iter()
            .filter(|s| s.method == "PUT" && s.path().contains("/uploads/") && s.body.is_empty())
            .count();
        assert_eq!(empty_puts, 0, "kiln completed an upload the registry lacks");
        assert_eq!(a.count("PUT", "/manifests/"), 0);
    }
}

// Point 7: an index fanning out to the same children is read once per child; too many
// children, or too deep, are refused.
#[test]
fn index_fan_out_is_read_once_and_bounded() {
    let kiln = Kiln::new();
    let image = Arc::new(TestImage::new(&[("hello.txt".into(), b"hello".to_vec())]));
    let copy = |addr: &str, name: &str| -> Output {
        let dest: PathBuf = kiln.scratch(name);
        kiln_run(
            &kiln,
            None,
            &[
                "copy",
                "--all-platforms",
                &format!("docker://{addr}/team/app:1"),
                &format!("oci:{}:1", dest.display()),
            ],
        )
    };

    // 8 levels of indexes, each listing the one below 20 times.
    let a = Scripted::new();
    serve_documents(&a, image.clone(), nested(&image, 8, 20));
    succeeded(&copy(&a.addr, "fan-out"), "copy of a fanned-out index");
    let gets: Vec<String> = a
        .seen()
        .iter()
        .filter(|s| s.path().contains("/manifests/"))
        .map(|s| s.path().to_string())
        .collect();
    assert_eq!(gets.len(), 9, "each document once: {gets:#?}");

    // 1001 different children: refused before any is read.
    let a = Scripted::new();
    let children: Vec<Vec<u8>> = (0..1001)
        .map(|n| format!(r#"{{"schemaVersion":2,"n":{n}}}"#).into_bytes())
        .collect();
    let listed: Vec<(&str, &[u8])> = children.iter().map(|c| (MANIFEST, c.as_slice())).collect();
    let top = index_of(&listed, 1);
    let documents = Documents {
        by_digest: [(sha256(&top), (INDEX.to_string(), top.clone()))].into(),
        top: sha256(&top),
    };
    serve_documents(&a, image.clone(), documents);
    let stderr = failed(
        &copy(&a.addr, "wide"),
        "copy of an index with 1001 children",
    );
    assert!(stderr.contains("at most 1000"), "{stderr}");
    assert_eq!(a.count("GET", "/manifests/"), 1);

    // An index listing 600 manifests and an index of 600 more: the bound is for the whole
    // copy, so the inner index is refused before its children are read.
    let a = Scripted::new();
    let mut by_digest = std::collections::HashMap::new();
    let manifests: Vec<Vec<u8>> = (0..1200)
        .map(|n| {
            let mut m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
            m["annotations"] = serde_json::json!({"n": n.to_string()});
            serde_json::to_vec(&m).unwrap()
        })
        .collect();
    for m in &manifests {
        by_digest.insert(sha256(m), (MANIFEST.to_string(), m.clone()));
    }
    let listed: Vec<(&str, &[u8])> = manifests.iter().map(|m| (MANIFEST, m.as_slice())).collect();
    let inner = index_of(&listed[600..], 1);
    by_digest.insert(sha256(&inner), (INDEX.to_string(), inner.clone()));
    let mut outer = vec![(INDEX, inner.as_slice())];
    outer.extend_from_slice(&listed[..600]);
    let top = index_of(&outer, 1);
    by_digest.insert(sha256(&top), (INDEX.to_string(), top.clone()));
    let documents = Documents {
        by_digest,
        top: sha256(&top),
    };
    serve_documents(&a, image.clone(), documents);
    let stderr = failed(
        &copy(&a.addr, "wider"),
        "copy of 1200 manifests in two indexes",
    );
    assert!(stderr.contains("at most 1000"), "{stderr}");
    assert_eq!(
        a.count("GET", "/manifests/"),
        2,
        "the top index and the inner one"
    );

    // Nested 10 deep.
    let a = Scripted::new();
    serve_documents(&a, image.clone(), nested(&image, 10, 1));
    let stderr = failed(&copy(&a.addr, "deep"), "copy of indexes nested 10 deep");
    assert!(stderr.contains("nest more than 8 deep"), "{stderr}");
    assert!(a.count("GET", "/manifests/") <= 10);
}
