//! Registry garbage collection beside live pushes: whatever the collector does meanwhile,
//! every manifest that got 201 pulls completely afterwards.
//!
//! The reproduction: 300 blobs nothing names, two hours old (as after a tag deleted long
//! ago); four clients push manifests naming them, each first asking whether the blob is
//! there (HEAD, as docker and `kiln push` do) or mounting it into another repository,
//! while `kiln registry gc` runs in a loop.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{Kiln, http::request, servers::Registry, sh};
use sha2::{Digest as _, Sha256};

const BLOBS: usize = 300;
const PUSHERS: usize = 4;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn blob(i: usize) -> Vec<u8> {
    format!("blob {i} of the race between pushes and gc").into_bytes()
}

/// A manifest that got 201: where, and the blobs it names.
struct Pushed {
    repo: &'static str,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

/// Make sure `repo` has the blob the way a client would: HEAD (or a mount from `old`),
/// and an upload only when the registry says it does not have it.
fn ensure_blob(addr: &str, repo: &str, bytes: &[u8], statuses: &Mutex<Vec<u16>>) {
    let d = digest_of(bytes);
    let status = if repo == "old" {
        request(addr, "HEAD", &format!("/v2/old/blobs/{d}"), &[], b"").status
    } else {
        let r = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from=old"),
            &[],
            b"",
        );
        // 202: not mountable, an upload session was opened instead; leave it unused.
        if r.status == 201 { 200 } else { r.status }
    };
    statuses.lock().unwrap().push(status);
    if status != 200 {
        let r = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        statuses.lock().unwrap().push(r.status);
    }
}

fn push(addr: &str, i: usize, statuses: &Mutex<Vec<u16>>) -> Option<Pushed> {
    let repo = if i.is_multiple_of(2) { "old" } else { "other" };
    let (config, layer) = (blob(i), blob((i + 1) % BLOBS));
    for b in [&config, &layer] {
        ensure_blob(addr, repo, b, statuses);
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest_of(&config),
        config.len(),
        digest_of(&layer),
        layer.len()
    )
    .into_bytes();
    let tag = format!("t{i}");
    let r = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        &manifest,
    );
    statuses.lock().unwrap().push(r.status);
    (r.status == 201).then(|| Pushed {
        repo,
        tag,
        manifest,
        blobs: vec![config, layer],
    })
}

/// Run the reproduction with `kiln registry gc --grace GRACE` looping beside the pushes;
/// returns how many pushes got 201 and how many collections ran.
fn pushes_beside_gc(grace: &str) -> (usize, usize) {
    let kiln = Kiln::new();
    let registry = Registry::start(&kiln);
    let addr = registry.addr.clone();
    for i in 0..BLOBS {
        let b = blob(i);
        let r = request(
            &addr,
            "POST",
            &format!("/v2/old/blobs/uploads/?digest={}", digest_of(&b)),
            &[],
            &b,
        );
        assert_eq!(r.status, 201);
    }
    sh(&format!(
        "find {} -exec touch -h -d '2 hours ago' {{}} +",
        kiln.root().join("registry").display()
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (stop, kiln_root) = (stop.clone(), kiln.root());
        let grace = grace.to_string();
        thread::spawn(move || {
            let started = Instant::now();
            let mut runs = 0;
            // Bounded: until the pushes end, at most 200 runs or 5 minutes.
            while !stop.load(Ordering::SeqCst)
                && runs < 200
                && started.elapsed() < Duration::from_secs(300)
            {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
                    .args(["registry", "gc", "--grace", &grace])
                    .env("KILN_ROOT", &kiln_root)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "gc failed beside pushes: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|t| {
            let (addr, statuses) = (addr.clone(), statuses.clone());
            thread::spawn(move || {
                (t..BLOBS)
                    .step_by(PUSHERS)
                    .filter_map(|i| push(&addr, i, &statuses))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pushed: Vec<Pushed> = pushers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let runs = collector.join().unwrap();
    // One more collection once everything is pushed: tags reach all of it now.
    kiln.ok(&["registry", "gc", "--grace", grace]);

    let statuses = statuses.lock().unwrap();
    assert!(
        statuses.iter().all(|s| *s < 500),
        "server errors beside gc: {:?}",
        statuses.iter().filter(|s| **s >= 500).collect::<Vec<_>>()
    );
    for p in &pushed {
        let r = request(
            &addr,
            "GET",
            &format!("/v2/{}/manifests/{}", p.repo, p.tag),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        assert_eq!(
            r.status, 200,
            "{}:{} got 201, now {}",
            p.repo, p.tag, r.status
        );
        assert_eq!(r.body, p.manifest);
        for b in &p.blobs {
            let d = digest_of(b);
            let r = request(&addr, "GET", &format!("/v2/{}/blobs/{d}", p.repo), &[], b"");
            assert_eq!(
                (r.status, r.body.as_slice()),
                (200, b.as_slice()),
                "{}:{} got 201, its blob {d} is gone",
                p.repo,
                p.tag
            );
        }
        let tags = request(&addr, "GET", &format!("/v2/{}/tags/list", p.repo), &[], b"");
        assert!(String::from_utf8_lossy(&tags.body).contains(&format!("\"{}\"", p.tag)));
    }
    (pushed.len(), runs)
}

#[test]
fn pushes_beside_gc_with_the_default_grace_all_land_whole() {
    let (pushed, runs) = pushes_beside_gc("1h");
    assert!(runs >= 1);
    // The HEADs and mounts claimed every old blob: no push had to fail.
    assert_eq!(pushed, BLOBS, "pushes refused beside {runs} collections");
}

#[test]
fn pushes_beside_gc_with_no_grace_land_whole_or_fail() {
    // With --grace 0s a blob HEADed before a collection started may go before its
    // manifest arrives (that push fails, MANIFEST_BLOB_UNKNOWN); none that got 201 breaks.
    let (pushed, runs) = pushes_beside_gc("0s");
    assert!(runs >= 1);
    assert!(pushed > 0, "no push landed beside {runs} collections");
    eprintln!("{pushed} of {BLOBS} pushes landed beside {runs} collections");
}
