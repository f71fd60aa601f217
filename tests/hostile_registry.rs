//! kiln's registry client against registries that misbehave on purpose: scripted servers
//! on 127.0.0.1 (tests/common/scripted.rs) that send without end, go silent or drip, take
//! upload chunks without keeping them, and fan indexes out (credentials sent elsewhere:
//! hostile_credentials.rs).
//! Every command runs under a time limit, every server sends a bounded amount.

mod common;

use std::{
    path::PathBuf,
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{
    Kiln,
    hostile::{TIMEOUTS, failed, kiln_run, kiln_with_image, succeeded},
    scripted::{
        Documents, INDEX, MANIFEST, Scripted, Seen, TestImage, drip, flood, index_of, nested, now,
        reply, serve_documents, sha256,
    },
};
use futures::FutureExt as _;

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
