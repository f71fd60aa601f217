//! The registry where the OCI conformance suite and Distribution meet kiln over HTTP: the
//! protocol corners compared with a real Distribution, and an image addressed by sha512
//! digests pushed, served and pulled end to end.

mod common;

use std::fs;

use common::{
    Kiln, http,
    servers::{Distribution, Registry},
};

/// The error code of an OCI error body, or `None` (Distribution answers some 404s in
/// plain text).
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v["errors"][0]["code"].as_str()?.to_string())
}

#[test]
fn protocol_corners_answer_as_distribution_does() {
    let kiln = Kiln::new();
    let ours = Registry::start(&kiln);
    let theirs = Distribution::start(&kiln.scratch("distribution"), None);
    // (method, path, what Distribution 2.8 was seen to answer here)
    let cases = [
        ("GET", "/v2/nope/tags/list", 404, Some("NAME_UNKNOWN")),
        ("GET", "/v2/_catalog?n=1000", 200, None),
        (
            "GET",
            "/v2/_catalog?n=1001",
            400,
            Some("PAGINATION_NUMBER_INVALID"),
        ),
        (
            "GET",
            "/v2/_catalog?n=999999999",
            400,
            Some("PAGINATION_NUMBER_INVALID"),
        ),
        // A tag that cannot exist: Distribution's router finds no route (plain text);
        // kiln says MANIFEST_UNKNOWN, as the OCI suite asks.
        ("GET", "/v2/x/manifests/.INVALID", 404, None),
        ("HEAD", "/v2/x/manifests/.INVALID", 404, None),
        ("GET", "/v2/x/nothing", 404, None),
    ];
    for (method, path, status, want) in cases {
        let distribution = http::request(&theirs.addr, method, path, &[], b"");
        assert_eq!(distribution.status, status, "Distribution: {method} {path}");
        assert_eq!(
            error_code(&distribution.body).as_deref(),
            want,
            "Distribution: {method} {path}"
        );
        let kiln = http::request(&ours.addr, method, path, &[], b"");
        assert_eq!(kiln.status, status, "kiln: {method} {path}");
        if let Some(want) = want {
            assert_eq!(
                error_code(&kiln.body).as_deref(),
                Some(want),
                "kiln: {method} {path}"
            );
        } else if status != 200 && method != "HEAD" {
            // Where Distribution has no JSON, kiln still sends the OCI error body.
            assert!(error_code(&kiln.body).is_some(), "kiln: {method} {path}");
        }
    }
}

/// An image whose layer, config and manifest are all addressed by sha512 digests, pushed
/// over HTTP and pulled by its sha512 digest: the registry serves it in that algorithm
/// and the client and store verify it in that algorithm.
#[test]
fn an_image_addressed_by_sha512_is_served_and_pulled() {
    use kiln_store::{Algorithm, Digest};
    let kiln = Kiln::new();
    let registry = Registry::start(&kiln);
    let r = &registry.addr;
    let tar = common::tar_of_files(&[("hello.txt".to_string(), b"sha512 all the way\n".to_vec())]);
    // diffIDs stay sha256 (kiln checks them in sha256); the blobs are named in sha512.
    let config = serde_json::to_vec(&common::config_for(&[&tar])).unwrap();
    let layer = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    let sha512 = |b: &[u8]| Digest::of_with(Algorithm::Sha512, b);
    for blob in [&layer, &config] {
        let d = sha512(blob);
        let reply = http::request(
            r,
            "POST",
            &format!("/v2/deep/blobs/uploads/?digest={d}"),
            &[],
            blob,
        );
        assert_eq!(reply.status, 201);
        assert_eq!(
            reply.header("docker-content-digest"),
            Some(d.to_string().as_str())
        );
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha512(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha512(&layer).to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let d = sha512(&manifest);
    let ct = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let reply = http::request(r, "PUT", &format!("/v2/deep/manifests/{d}"), &ct, &manifest);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = http::request(r, "GET", &format!("/v2/deep/manifests/{d}"), &[], b"");
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, manifest.as_slice())
    );
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );

    kiln.ok(&["pull", &format!("{r}/deep@{d}")]);
    let images = kiln.ok(&["images"]);
    let id = Digest::of_with(Algorithm::Sha512, &config);
    assert!(
        images.contains(&format!(" {} ", &id.hex()[..12])),
        "{images}"
    );
    let exported = kiln.scratch("deep.tar");
    kiln.ok(&[
        "export",
        &format!("{r}/deep@{d}"),
        "-o",
        exported.to_str().unwrap(),
    ]);
    let files = common::files_of(&fs::read(&exported).unwrap());
    assert_eq!(
        files,
        vec![("hello.txt".to_string(), b"sha512 all the way\n".to_vec())]
    );
}
