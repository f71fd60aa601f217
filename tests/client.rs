//! The registry client end to end: `kiln push`, `pull`, `login`, `logout` and `copy`
//! against kiln's registry and CNCF Distribution 2.8, with skopeo as the witness, a token
//! server for the bearer flow, a proxy that breaks uploads, and a registry that serves
//! corrupt bytes.

mod common;

use std::{
    fs,
    io::Write,
    path::Path,
    process::{Output, Stdio},
};

use common::{
    Kiln, require_tool,
    servers::{CuttingProxy, Distribution, Registry},
    sh, skopeo, skopeo_digest, tar_of_files,
    token::TokenRegistry,
};
use sha2::{Digest as _, Sha256};

fn with_busybox() -> Kiln {
    common::with_busybox_as("busybox:1")
}

/// Run kiln with a docker config directory of its own and, optionally, standard input.
fn run_with(kiln: &Kiln, docker_config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = kiln.cmd();
    cmd.env("DOCKER_CONFIG", docker_config)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn succeeded(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} succeeded but should not have"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn push_and_pull_with_kiln_registry() {
    let kiln = with_busybox();
    let registry = Registry::start(&kiln);
    let r = &registry.addr;
    let digest = kiln.manifest_digest("busybox:1");
    let id = kiln.image_id("busybox:1");

    let dest = format!("{r}/team/busybox:1");
    let out = kiln.run(&["push", "busybox:1", &dest]);
    let stdout = succeeded(&out, "push");
    assert!(stdout.contains(&digest), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(": copied ").count(), 2, "{stderr}");
    assert_eq!(skopeo_digest(&format!("docker://{dest}")), digest);

    // Again: HEAD finds both blobs, nothing is uploaded.
    let again = kiln.run(&["push", "busybox:1", &dest]);
    succeeded(&again, "second push");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.matches("already there").count(), 2, "{stderr}");

    // Another repository of the same registry: mounted, not uploaded.
    let other = kiln.run(&["push", "busybox:1", &format!("{r}/other/busybox:2")]);
    succeeded(&other, "push to another repository");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(
        stderr.matches("mounted from team/busybox").count(),
        2,
        "{stderr}"
    );

    // Into an empty store: same manifest, same image, same files.
    let fresh = Kiln::new();
    let stdout = fresh.ok(&["pull", &dest]);
    assert!(stdout.contains(&digest), "{stdout}");
    assert_eq!(fresh.manifest_digest(&dest), digest);
    assert_eq!(fresh.image_id(&dest), id);
    let a = kiln.run(&["export", "busybox:1"]).stdout;
    let b = fresh.run(&["export", &dest]).stdout;
    assert!(
        !a.is_empty() && a == b,
        "the pulled image exports a different tree"
    );

    // Pushed by skopeo, pulled by kiln: the same manifest.
    let layout = kiln.root().join("images");
    skopeo(&format!(
        "copy -q --dest-tls-verify=false oci:{}:docker.io/library/busybox:1 docker://{r}/sk/busybox:1",
        layout.display()
    ));
    let from_skopeo = Kiln::new();
    from_skopeo.ok(&["pull", &format!("{r}/sk/busybox:1")]);
    assert_eq!(
        from_skopeo.manifest_digest(&format!("{r}/sk/busybox:1")),
        skopeo_digest(&format!("docker://{r}/sk/busybox:1"))
    );

    // By digest: untagged in the store, found by digest.
    let by_digest = Kiln::new();
    by_digest.ok(&["pull", &format!("{r}/team/busybox@{digest}")]);
    assert_eq!(by_digest.manifest_digest(&digest), digest);
}

#[test]
fn distribution_peer_both_ways_and_schema2() {
    let kiln = with_busybox();
    let dist = Distribution::start(&kiln.scratch("distribution"), None);
    let d = &dist.addr;
    let digest = kiln.manifest_digest("busybox:1");

    // kiln push → Distribution, skopeo sees the same manifest.
    kiln.ok(&["push", "busybox:1", &format!("{d}/k/busybox:1")]);
    assert_eq!(skopeo_digest(&format!("docker://{d}/k/busybox:1")), digest);
    let config = sh(&format!(
        "curl -sf http://{d}/v2/k/busybox/blobs/{}",
        kiln.image_id("busybox:1")
    ));
    assert!(config.contains(r#""Cmd":["sh"]"#), "CMD lost: {config}");

    // skopeo push (converted to Docker schema2) → kiln pull keeps that manifest.
    let layout = kiln.root().join("images");
    skopeo(&format!(
        "copy -q --format v2s2 --dest-tls-verify=false oci:{}:docker.io/library/busybox:1 \
         docker://{d}/s/busybox:2",
        layout.display()
    ));
    let v2s2 = skopeo_digest(&format!("docker://{d}/s/busybox:2"));
    assert_ne!(v2s2, digest, "skopeo should have converted the manifest");
    let fresh = Kiln::new();
    fresh.ok(&["pull", &format!("{d}/s/busybox:2")]);
    assert_eq!(fresh.manifest_digest(&format!("{d}/s/busybox:2")), v2s2);
    let v: serde_json::Value =
        serde_json::from_str(&fresh.ok(&["inspect", &format!("{d}/s/busybox:2")])).unwrap();
    assert_eq!(
        v[0]["MediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // And on to kiln's registry, schema2 and digest kept; Distribution → kiln directly too.
    let registry = Registry::start(&kiln);
    let r = &registry.addr;
    fresh.ok(&[
        "push",
        &format!("{d}/s/busybox:2"),
        &format!("{r}/s/busybox:2"),
    ]);
    assert_eq!(skopeo_digest(&format!("docker://{r}/s/busybox:2")), v2s2);
    kiln.ok(&[
        "copy",
        &format!("docker://{d}/k/busybox:1"),
        &format!("docker://{r}/from-dist/busybox:1"),
    ]);
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/from-dist/busybox:1")),
        digest
    );
}

#[test]
fn login_and_basic_auth_against_distribution() {
    require_tool("htpasswd");
    let kiln = with_busybox();
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} alice s3cret 2>/dev/null",
        users.display()
    ));
    let dist = Distribution::start(&kiln.scratch("distribution"), Some(&users));
    let d = &dist.addr;
    let config_dir = kiln.scratch("docker");
    let image = format!("{d}/p/busybox:1");

    let anonymous = failed(
        &run_with(&kiln, &config_dir, &["push", "busybox:1", &image], None),
        "anonymous push",
    );
    assert!(anonymous.contains("authentication required"), "{anonymous}");
    assert!(anonymous.contains("kiln login"), "{anonymous}");

    let no_user = failed(
        &run_with(&kiln, &config_dir, &["login", d], None),
        "login without -u",
    );
    assert!(no_user.contains("-u USER"), "{no_user}");

    let wrong = failed(
        &run_with(
            &kiln,
            &config_dir,
            &["login", "-u", "alice", "--password-stdin", d],
            Some("nope\n"),
        ),
        "login with a wrong password",
    );
    assert!(wrong.contains("authentication required"), "{wrong}");
    assert!(
        !config_dir.join("config.json").exists(),
        "a refused login was saved"
    );

    let out = run_with(
        &kiln,
        &config_dir,
        &["login", "-u", "alice", "--password-stdin", d],
        Some("s3cret\n"),
    );
    assert!(succeeded(&out, "login").contains("Login Succeeded"));
    let config = config_dir.join("config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );

    succeeded(
        &run_with(&kiln, &config_dir, &["push", "busybox:1", &image], None),
        "push with saved credentials",
    );
    // skopeo reads the file kiln wrote.
    let digest = kiln.manifest_digest("busybox:1");
    let raw = skopeo(&format!(
        "inspect --raw --tls-verify=false --authfile {} docker://{image}",
        config.display()
    ));
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(raw.trim_end()))),
        digest
    );
    let fresh = Kiln::new();
    succeeded(
        &run_with(&fresh, &config_dir, &["pull", &image], None),
        "pull with saved credentials",
    );
    assert_eq!(fresh.manifest_digest(&image), digest);

    let out = run_with(&kiln, &config_dir, &["logout", d], None);
    assert!(succeeded(&out, "logout").contains("Removing login credentials"));
    failed(
        &run_with(&Kiln::new(), &config_dir, &["pull", &image], None),
        "pull after logout",
    );
}

#[test]
fn bearer_token_flow_caches_and_refetches() {
    let kiln = with_busybox();
    let registry = Registry::start(&kiln);
    let token = TokenRegistry::start(&registry.addr, "bob", "hunter2");
    let t = &token.addr;
    let config_dir = kiln.scratch("docker");
    let image = format!("{t}/team/app:1");

    let denied = failed(
        &run_with(&kiln, &config_dir, &["push", "busybox:1", &image], None),
        "push without a login",
    );
    assert!(denied.contains("token service refused"), "{denied}");
    assert!(denied.contains("kiln login"), "{denied}");

    let out = run_with(
        &kiln,
        &config_dir,
        &["login", "-u", "bob", "--password-stdin", t],
        Some("hunter2"),
    );
    succeeded(&out, "login through the token flow");

    // One token serves the whole push (jobs 1: no two first requests race for one); the
    // proxy expires it before the manifest PUT, and the client fetches another.
    token.expire_tokens_at_next_manifest_put();
    let before = token.tokens_issued();
    succeeded(
        &run_with(
            &kiln,
            &config_dir,
            &["push", "--jobs", "1", "busybox:1", &image],
            None,
        ),
        "push with a bearer token",
    );
    assert_eq!(
        token.tokens_issued() - before,
        2,
        "one token, then one after expiry"
    );

    let fresh = Kiln::new();
    succeeded(
        &run_with(&fresh, &config_dir, &["pull", &image], None),
        "pull with a bearer token",
    );
    assert_eq!(
        fresh.manifest_digest(&image),
        kiln.manifest_digest("busybox:1")
    );
    // skopeo takes the same credentials through the same token flow.
    skopeo(&format!(
        "inspect --raw --tls-verify=false --authfile {} docker://{image}",
        config_dir.join("config.json").display()
    ));
}

/// An image with one big incompressible layer, for transfers worth breaking.
fn with_big_image(kiln: &Kiln, mebibytes: usize) {
    let mut bytes = Vec::with_capacity(mebibytes << 20);
    let mut block = Sha256::digest(b"kiln").to_vec();
    while bytes.len() < mebibytes << 20 {
        block = Sha256::digest(&block).to_vec();
        bytes.extend_from_slice(&block);
    }
    let tar = tar_of_files(&[("data/random.bin".to_string(), bytes)]);
    let path = kiln.file("big.tar", &tar);
    kiln.ok(&["import", &path, "big:1"]);
}

#[test]
fn chunked_push_resumes_after_a_broken_connection() {
    let kiln = Kiln::new();
    with_big_image(&kiln, 6);
    let digest = kiln.manifest_digest("big:1");
    let registry = Registry::start(&kiln);
    let dist = Distribution::start(&kiln.scratch("distribution"), None);
    for upstream in [&registry.addr, &dist.addr] {
        // Cut the connection 2.5 MiB into the upload: mid-chunk, mid-blob.
        let proxy = CuttingProxy::start(upstream, (5 << 20) / 2);
        let image = format!("{}/resume/big:1", proxy.addr);
        let out = kiln.run(&["push", "--chunk-size", "1MiB", "big:1", &image]);
        succeeded(&out, "push through a proxy that breaks the connection");
        assert_eq!(
            proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the proxy never cut the upload"
        );
        // Straight from the registry: every byte arrived, in order.
        let fresh = Kiln::new();
        let direct = format!("{upstream}/resume/big:1");
        fresh.ok(&["pull", &direct]);
        assert_eq!(fresh.manifest_digest(&direct), digest);
        let (a, b) = (
            fresh.run(&["export", &direct]).stdout,
            kiln.run(&["export", "big:1"]).stdout,
        );
        assert!(
            a.len() > 6 << 20 && a == b,
            "the resumed blob unpacks differently"
        );
    }
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let kiln = with_busybox();
    let registry = Registry::start(&kiln);
    let r = &registry.addr;
    let image = format!("{r}/bad/busybox:1");
    kiln.ok(&["push", "busybox:1", &image]);
    let v: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "busybox:1"])).unwrap();
    let layer = v[0]["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = layer.strip_prefix("sha256:").unwrap();
    // Corrupt the stored blob behind the registry's back, keeping its length.
    let path = kiln
        .root()
        .join("registry/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let fresh = Kiln::new();
    fresh.ok(&["images"]);
    let before = fresh.snapshot();
    let err = fresh.fails(&["pull", &image]);
    assert!(
        err.contains(&layer),
        "the error does not name the blob: {err}"
    );
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(fresh.snapshot(), before, "a failed pull changed the store");

    // Into an archive: the error names the blob and no file appears.
    let archive = kiln.scratch("never.tar");
    let err = kiln.fails(&[
        "copy",
        &format!("docker://{image}"),
        &format!("docker-archive:{}", archive.display()),
    ]);
    assert!(err.contains(&layer), "{err}");
    assert!(!archive.exists(), "a failed copy left an archive behind");
    let leftovers: Vec<_> = fs::read_dir(archive.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kiln-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Registry to registry: the stream is checked on the way and no tag appears.
    let other = Registry::start(&Kiln::new());
    let err = kiln.fails(&[
        "copy",
        &format!("docker://{image}"),
        &format!("docker://{}/bad/busybox:1", other.addr),
    ]);
    assert!(
        err.contains(&layer),
        "the error does not name the blob: {err}"
    );
    let tags = sh(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' http://{}/v2/bad/busybox/manifests/1",
        other.addr
    ));
    assert_eq!(tags, "404", "a tag appeared for a failed copy");
}

#[test]
fn errors_name_what_went_wrong() {
    let kiln = Kiln::new();
    let port = common::servers::free_port();
    let err = kiln.fails(&["pull", &format!("127.0.0.1:{port}/x/y:1")]);
    assert!(err.contains("connection refused"), "{err}");
    let err = kiln.fails(&["pull", "no-such-host.invalid:5000/x/y:1"]);
    assert!(
        err.contains("unknown registry host no-such-host.invalid"),
        "{err}"
    );
    let registry = Registry::start(&kiln);
    let err = kiln.fails(&["pull", &format!("{}/x/y:1", registry.addr)]);
    assert!(
        err.contains(&format!("manifest {}/x/y:1 not found", registry.addr)),
        "{err}"
    );
    let err = kiln.fails(&["push", "nothing:1", &format!("{}/x/y:1", registry.addr)]);
    assert!(err.contains("no such image: nothing:1"), "{err}");
}

#[test]
fn tls_is_verified_against_the_system_roots_and_ca_cert() {
    require_tool("openssl");
    let kiln = with_busybox();
    // A CA, and a server certificate it signs (webpki refuses a CA as the server's own).
    let d = kiln.scratch("tls");
    fs::create_dir_all(&d).unwrap();
    let d = d.display();
    sh(&format!(
        "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kiln-test-ca \
           -keyout ca.key -out ca.crt 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key \
           -out server.csr 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext && \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
           -extfile ext -out server.crt 2>/dev/null"
    ));
    let key = kiln.scratch("tls/server.key");
    let cert = kiln.scratch("tls/server.crt");
    let ca_path = kiln.scratch("tls/ca.crt");
    let registry = Registry::start_with(
        &kiln,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let image = format!("{}/tls/busybox:1", registry.addr);
    let ca = ca_path.to_str().unwrap();

    // Verified, without the CA: refused, and the error says why.
    let err = kiln.fails(&["push", "--tls-verify", "busybox:1", &image]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With it: pushed and pulled over verified TLS.
    kiln.ok(&["push", "--tls-verify", "--ca-cert", ca, "busybox:1", &image]);
    let fresh = Kiln::new();
    fresh.ok(&["pull", "--tls-verify", "--ca-cert", ca, &image]);
    assert_eq!(
        fresh.manifest_digest(&image),
        kiln.manifest_digest("busybox:1")
    );
    // Loopback is an insecure registry by docker's rule: TLS, unverified.
    Kiln::new().ok(&["pull", &image]);
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_otherwise() {
    require_tool("script");
    let kiln = Kiln::new();
    with_big_image(&kiln, 4);
    let registry = Registry::start(&kiln);
    let image = format!("{}/progress/big:1", registry.addr);

    // Not a terminal: one plain line per blob, no escape sequences.
    let out = kiln.run(&["push", "big:1", &image]);
    let plain = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{plain}");
    assert_eq!(plain.matches(": copied ").count(), 2, "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "escape codes in a log: {plain:?}"
    );

    // A terminal (script gives the command a pty): a bar per blob with bytes and rate.
    let fresh = Kiln::new();
    let command = format!(
        "KILN_ROOT={} {} pull {image}",
        fresh.root().display(),
        env!("CARGO_BIN_EXE_kiln")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("\u{1b}[2K"), "no bar was drawn: {tty:?}");
    assert!(
        tty.contains("MiB/") && tty.contains("B/s"),
        "no bytes or rate: {tty:?}"
    );
    assert!(tty.contains(": copied "), "{tty:?}");
}
