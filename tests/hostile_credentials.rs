//! kiln's registry client against registries that send its credentials elsewhere: an
//! upload Location or a redirect on another host gets none (scripted servers on
//! 127.0.0.1, tests/common/scripted.rs; hostile_registry.rs has the rest).
//! Every command runs under a time limit, every server sends a bounded amount.

mod common;

use std::sync::Arc;

use common::{
    Kiln,
    hostile::{basic, failed, kiln_run, kiln_with_image, push_target, succeeded},
    scripted::{Scripted, Seen, TestImage, docker_config, now, reply},
};

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
