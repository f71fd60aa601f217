//! `kiln registry serve` against real clients: skopeo pushes, lists, inspects, pulls and
//! deletes through every transport users have, and digests survive each trip.

mod common;

use std::{
    fs,
    process::{Command, Stdio},
};

use common::{
    Kiln, busybox_rootfs, files_under, require_tool, servers::Registry, sh, skopeo, with_busybox_as,
};

#[test]
fn skopeo_pushes_and_pulls_through_every_transport() {
    let kiln = with_busybox_as("busybox:latest");
    let digest = kiln.manifest_digest("busybox");
    let id = kiln.image_id("busybox");
    let registry = Registry::start(&kiln);
    let r = &registry.addr;
    let layout = kiln.root().join("images");
    let no_tls = "--dest-tls-verify=false";

    // In: from kiln's store (an OCI layout), and from a docker-archive and a dir.
    skopeo(&format!(
        "copy {no_tls} oci:{}:docker.io/library/busybox:latest docker://{r}/library/busybox:1",
        layout.display()
    ));
    let saved = kiln.scratch("saved.tar");
    kiln.ok(&["save", "-o", saved.to_str().unwrap(), "busybox"]);
    skopeo(&format!(
        "copy {no_tls} docker-archive:{} docker://{r}/deep/name/space/busybox:archive",
        saved.display()
    ));
    let dir = kiln.scratch("dir");
    skopeo(&format!(
        "copy oci:{}:docker.io/library/busybox:latest dir:{}",
        layout.display(),
        dir.display()
    ));
    skopeo(&format!(
        "copy {no_tls} dir:{} docker://{r}/library/busybox:fromdir",
        dir.display()
    ));

    let tags: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "list-tags --tls-verify=false docker://{r}/library/busybox"
    )))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["1", "fromdir"]));
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "inspect --tls-verify=false docker://{r}/library/busybox:1"
    )))
    .unwrap();
    assert_eq!(
        inspect["Digest"],
        digest.as_str(),
        "the registry serves our manifest byte for byte"
    );

    // Out: to an OCI layout and to a docker-archive that kiln loads back.
    let out = kiln.scratch("out");
    skopeo(&format!(
        "copy --src-tls-verify=false docker://{r}/library/busybox:1 oci:{}:t",
        out.display()
    ));
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let archive = kiln.scratch("pulled.tar");
    skopeo(&format!(
        "copy --src-tls-verify=false docker://{r}/deep/name/space/busybox:archive docker-archive:{}:busybox:pulled",
        archive.display()
    ));
    let fresh = Kiln::new();
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(fresh.image_id("busybox:pulled"), id);

    // Docker schema2: skopeo converts on the way in; the registry keeps it as it came.
    skopeo(&format!(
        "copy --format v2s2 {no_tls} oci:{}:docker.io/library/busybox:latest docker://{r}/library/busybox:v2s2",
        layout.display()
    ));
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "inspect --raw --tls-verify=false docker://{r}/library/busybox:v2s2"
    )))
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let head = sh(&format!(
        "curl -sSI http://{r}/v2/library/busybox/manifests/v2s2 | tr -d '\\r' | tr 'A-Z' 'a-z'"
    ));
    assert!(
        head.contains("content-type: application/vnd.docker.distribution.manifest.v2+json"),
        "{head}"
    );

    // Delete: by digest, every tag on it goes.
    skopeo(&format!(
        "delete --tls-verify=false docker://{r}/library/busybox:1"
    ));
    let tags: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "list-tags --tls-verify=false docker://{r}/library/busybox"
    )))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v2s2"]));

    // SIGTERM stops it cleanly.
    assert!(registry.stop().success());
}

#[test]
fn uploads_survive_a_restart() {
    // Upload state lives in storage: start a chunked upload, restart the server, finish it.
    let kiln = Kiln::new();
    let registry = Registry::start(&kiln);
    let base = format!("http://{}", registry.addr);
    let location = sh(&format!(
        "curl -sS -o /dev/null -D - -X POST {base}/v2/r/blobs/uploads/ | tr -d '\\r' | sed -n 's/^location: //Ip'"
    ));
    let location = location.trim().to_string();
    assert!(location.starts_with("/v2/r/blobs/uploads/"), "{location:?}");
    sh(&format!(
        "printf abc | curl -sS -f -X PATCH --data-binary @- {base}{location}"
    ));
    assert!(registry.stop().success());

    let registry = Registry::start(&kiln);
    let base = format!("http://{}", registry.addr);
    let digest = format!(
        "sha256:{}",
        sh("printf abcdef | sha256sum | cut -d' ' -f1").trim()
    );
    sh(&format!(
        "printf def | curl -sS -f -X PATCH -H 'Content-Range: 3-5' --data-binary @- {base}{location}"
    ));
    let status = sh(&format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' -X PUT '{base}{location}?digest={digest}'"
    ));
    assert_eq!(status, "201");
    let body = sh(&format!("curl -sS -f {base}/v2/r/blobs/{digest}"));
    assert_eq!(body, "abcdef");
}

#[test]
fn kill_9_mid_upload_leaves_no_half_blob() {
    let kiln = Kiln::new();
    let rootfs = busybox_rootfs(kiln.dir.path());
    kiln.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let digest = kiln.manifest_digest("busybox");
    let layout = kiln.root().join("images");

    let registry = Registry::start(&kiln);
    let r = registry.addr.clone();
    skopeo(&format!(
        "copy --dest-tls-verify=false oci:{}:docker.io/library/busybox:latest docker://{r}/library/busybox:1",
        layout.display()
    ));

    // 256 MiB, sent slowly enough that the kill lands in the middle.
    let big = kiln.scratch("big.bin");
    sh(&format!(
        "head -c 268435456 /dev/urandom > {}",
        big.display()
    ));
    let big_digest = format!(
        "sha256:{}",
        sh(&format!("sha256sum {} | cut -d' ' -f1", big.display())).trim()
    );
    let upload = |r: &str, rate: &str| {
        format!(
            "curl -sS -o /dev/null -w '%{{http_code}}' -X POST {rate} \
             -H 'Content-Type: application/octet-stream' --data-binary @{} \
             'http://{r}/v2/big/blobs/uploads/?digest={big_digest}'",
            big.display()
        )
    };
    let client = Command::new("sh")
        .args(["-c", &upload(&r, "--limit-rate 64M")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    registry.crash();
    let cut_short = client.wait_with_output().unwrap();
    assert_ne!(
        String::from_utf8_lossy(&cut_short.stdout),
        "201",
        "the upload finished before the kill: the test did not test anything"
    );

    let registry = Registry::start(&kiln);
    let r = registry.addr.clone();
    let head = |r: &str| {
        sh(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' -I http://{r}/v2/big/blobs/{big_digest}"
        ))
    };
    assert_eq!(head(&r), "404", "a half-received blob must not be visible");
    // The upload can simply be done again, and the blob is whole.
    let status = sh(&upload(&r, ""));
    assert_eq!(status, "201");
    assert_eq!(head(&r), "200");
    let got = sh(&format!(
        "curl -sS -f http://{r}/v2/big/blobs/{big_digest} | sha256sum | cut -d' ' -f1"
    ));
    assert_eq!(format!("sha256:{}", got.trim()), big_digest);
    // What was pushed before the crash still pulls, digests unchanged.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "inspect --tls-verify=false docker://{r}/library/busybox:1"
    )))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    let out = kiln.scratch("after-crash");
    skopeo(&format!(
        "copy --src-tls-verify=false docker://{r}/library/busybox:1 oci:{}:t",
        out.display()
    ));

    // The killed upload left its partial file (listings never show it); gc sweeps it.
    let partials = || {
        let mut files = Vec::new();
        files_under(&kiln.root().join("registry"), &mut files);
        files
            .into_iter()
            .filter(|f| {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                name.rsplit_once('#')
                    .is_some_and(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect::<Vec<_>>()
    };
    assert!(
        !partials().is_empty(),
        "the crash left no partial file to sweep"
    );
    let report = kiln.ok(&["registry", "gc", "--grace", "0s"]);
    assert!(partials().is_empty(), "{report}\nleft: {:?}", partials());
}

#[test]
fn htpasswd_basic_auth_with_skopeo() {
    require_tool("htpasswd");
    let kiln = Kiln::new();
    let rootfs = busybox_rootfs(kiln.dir.path());
    kiln.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let layout = kiln.root().join("images");
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} alice s3cret 2>/dev/null",
        users.display()
    ));
    let registry = Registry::start_with(&kiln, &["--htpasswd", users.to_str().unwrap()]);
    let r = &registry.addr;
    let src = format!("oci:{}:docker.io/library/busybox:latest", layout.display());

    // Without credentials: refused with a Basic challenge.
    let push = format!("skopeo copy --dest-tls-verify=false {src} docker://{r}/p/busybox:1");
    let denied = Command::new("sh").args(["-c", &push]).output().unwrap();
    assert!(!denied.status.success(), "an anonymous push went through");
    let challenge = sh(&format!(
        "curl -s -o /dev/null -D - -X POST http://{r}/v2/p/blobs/uploads/ | tr -d '\\r'"
    ));
    assert!(challenge.contains("401"), "{challenge}");
    assert!(
        challenge
            .to_lowercase()
            .contains("www-authenticate: basic realm="),
        "{challenge}"
    );
    let wrong = Command::new("sh")
        .args(["-c", &format!("{push} --dest-creds alice:nope")])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password was accepted");

    // With them: push, list, pull.
    skopeo(&format!(
        "copy --dest-tls-verify=false --dest-creds alice:s3cret {src} docker://{r}/p/busybox:1"
    ));
    let tags = skopeo(&format!(
        "list-tags --tls-verify=false --creds alice:s3cret docker://{r}/p/busybox"
    ));
    assert!(tags.contains("\"1\""), "{tags}");
    let out = kiln.scratch("pulled");
    skopeo(&format!(
        "copy --src-tls-verify=false --src-creds alice:s3cret docker://{r}/p/busybox:1 oci:{}:t",
        out.display()
    ));
    drop(registry);

    // Anonymous reads: pull without credentials, still no anonymous push.
    let registry = Registry::start_with(
        &kiln,
        &[
            "--htpasswd",
            users.to_str().unwrap(),
            "--allow-anonymous-read",
        ],
    );
    let r = &registry.addr;
    skopeo(&format!(
        "inspect --tls-verify=false docker://{r}/p/busybox:1"
    ));
    let push = format!("skopeo copy --dest-tls-verify=false {src} docker://{r}/p/busybox:2");
    assert!(
        !Command::new("sh")
            .args(["-c", &push])
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn tls_with_a_self_signed_certificate() {
    require_tool("openssl");
    let kiln = Kiln::new();
    let rootfs = busybox_rootfs(kiln.dir.path());
    kiln.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let digest = kiln.manifest_digest("busybox");
    let layout = kiln.root().join("images");
    // skopeo trusts the CA certificates (*.crt) of a --cert-dir.
    // The server's key stays out of it: skopeo would take a *.key there for a client key.
    let certs = kiln.scratch("certs");
    fs::create_dir_all(&certs).unwrap();
    let key = kiln.scratch("server.key");
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
         -addext subjectAltName=IP:127.0.0.1 -keyout {} -out {}/ca.crt 2>/dev/null",
        key.display(),
        certs.display()
    ));
    let registry = Registry::start_with(
        &kiln,
        &[
            "--tls-cert",
            certs.join("ca.crt").to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let r = &registry.addr;
    let c = certs.display();
    skopeo(&format!(
        "copy --dest-cert-dir {c} oci:{}:docker.io/library/busybox:latest docker://{r}/secure/busybox:1",
        layout.display()
    ));
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&format!(
        "inspect --cert-dir {c} docker://{r}/secure/busybox:1"
    )))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    // Plain HTTP is not served on a TLS port, and an untrusted certificate is refused.
    let plain = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' http://{r}/v2/ || true"
    ));
    assert_ne!(plain, "200");
    let untrusted = Command::new("sh")
        .args([
            "-c",
            &format!("skopeo inspect docker://{r}/secure/busybox:1"),
        ])
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "an unknown certificate was trusted"
    );
    let healthz = sh(&format!("curl -sS --cacert {c}/ca.crt https://{r}/healthz"));
    assert_eq!(healthz, "ok\n");
    assert!(registry.stop().success());
}

#[test]
fn registry_gc_keeps_what_tags_reach() {
    let kiln = Kiln::new();
    let rootfs = busybox_rootfs(kiln.dir.path());
    kiln.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let layout = kiln.root().join("images");
    let registry = Registry::start(&kiln);
    let r = registry.addr.clone();
    skopeo(&format!(
        "copy --dest-tls-verify=false oci:{}:docker.io/library/busybox:latest docker://{r}/keep/busybox:1",
        layout.display()
    ));
    // An orphan blob: uploaded, never named by a manifest.
    let orphan = format!(
        "sha256:{}",
        sh("printf orphan | sha256sum | cut -d' ' -f1").trim()
    );
    sh(&format!(
        "printf orphan | curl -sS -f -X POST --data-binary @- 'http://{r}/v2/keep/busybox/blobs/uploads/?digest={orphan}'"
    ));
    drop(registry);

    let dry = kiln.ok(&["registry", "gc", "--dry-run", "--grace", "0s"]);
    assert!(
        dry.contains(&format!("would remove blob {orphan}")),
        "{dry}"
    );
    let young = kiln.ok(&["registry", "gc"]);
    assert!(
        young.contains("0 manifests, 0 blobs"),
        "the default grace keeps fresh uploads: {young}"
    );
    let done = kiln.ok(&["registry", "gc", "--grace", "0s"]);
    assert!(done.contains(&format!("removed blob {orphan}")), "{done}");

    let registry = Registry::start(&kiln);
    let r = registry.addr.clone();
    let out = kiln.scratch("after-gc");
    skopeo(&format!(
        "copy --src-tls-verify=false docker://{r}/keep/busybox:1 oci:{}:t",
        out.display()
    ));
    let status = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -I http://{r}/v2/keep/busybox/blobs/{orphan}"
    ));
    assert_eq!(status, "404");
}

#[test]
fn serve_reads_a_config_file() {
    require_tool("htpasswd");
    let kiln = Kiln::new();
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} bob pw 2>/dev/null",
        users.display()
    ));
    let storage = kiln.scratch("elsewhere");
    let config = kiln.file(
        "kiln-registry.toml",
        format!(
            "storage = \"{}\"\nhtpasswd = \"{}\"\nallow_anonymous_read = true\n",
            storage.display(),
            users.display()
        )
        .as_bytes(),
    );
    let registry = Registry::start_with(&kiln, &["--config", &config]);
    let r = &registry.addr;
    let anonymous_push = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -X POST http://{r}/v2/c/blobs/uploads/"
    ));
    assert_eq!(anonymous_push, "401", "htpasswd from the file is in force");
    let read = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' http://{r}/v2/"
    ));
    assert_eq!(read, "200", "anonymous reads from the file are in force");
    let push = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -u bob:pw -X POST http://{r}/v2/c/blobs/uploads/"
    ));
    assert_eq!(push, "202");
    assert!(
        storage.join("uploads").exists(),
        "storage from the file is used"
    );
    drop(registry);

    let bad = kiln.file(
        "bad.toml",
        b"listen = \"127.0.0.1:0\"\nlisten_port = 5000\n",
    );
    let err = kiln.fails(&["registry", "serve", "--config", &bad]);
    assert!(
        err.contains("unknown field") && err.contains("listen_port"),
        "{err}"
    );
}
