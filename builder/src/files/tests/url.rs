//! ADD of http(s) URLs against a loopback server: the file's name, mode, owner and
//! Last-Modified mtime; `--checksum` right and wrong (nothing written); 404 and refused
//! connections; one fetch per build for the key and the write; the cache input is the
//! checksum when given (no network) and the content's digest otherwise.

use std::{fs, os::unix::fs::MetadataExt};

use kiln_store::Digest;

use super::{
    server::{Answer, Server, refused_addr},
    *,
};
use crate::files::remote::{UrlInput, file_name};

const BODY: &[u8] = b"#!/bin/sh\necho fetched\n";
/// `Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT`.
const MODIFIED: i64 = 1_445_412_480;

fn sum(body: &[u8]) -> String {
    Digest::of(body).to_string()
}

fn server() -> Server {
    Server::start(&[
        (
            "/dir/tool.sh",
            Answer::ok(BODY).header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ),
        ("/plain", Answer::ok(b"no date")),
        (
            "/old",
            Answer::status(302).header("Location", "/dir/tool.sh"),
        ),
        (
            "/dir/",
            Answer::ok(b"index").header("Content-Disposition", "attachment; filename=x"),
        ),
        ("/a.tar.gz", Answer::ok(&tar_gz())),
    ])
}

fn tar_gz() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, "inner", &b"hi"[..]).unwrap();
    let raw = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &raw).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_fetched_file_lands_with_its_name_mode_and_last_modified_time() {
    let s = server();
    let fx = Fx::new();
    fx.run(&format!("ADD {} /opt/", s.url("/dir/tool.sh")))
        .unwrap();
    let m = fs::metadata(fx.root().join("opt/tool.sh")).unwrap();
    assert_eq!(fs::read(fx.root().join("opt/tool.sh")).unwrap(), BODY);
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o600, MODIFIED));
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }

    // No trailing slash: the destination is the file's name. --chmod and --chown apply.
    let chown = if is_root() { "--chown=12:34 " } else { "" };
    fx.run(&format!(
        "ADD --chmod=755 {chown}{} /bin/tool",
        s.url("/dir/tool.sh")
    ))
    .unwrap();
    let m = fs::metadata(fx.root().join("bin/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (12, 34));
    }

    // No Last-Modified: the epoch (BuildKit's rule). A redirect is followed and the file
    // is named after the URL written. A path that ends in `/` names the file after its
    // last segment, whatever Content-Disposition says.
    fx.run(&format!(
        "ADD {} {} {} /d/",
        s.url("/plain"),
        s.url("/old"),
        s.url("/dir/")
    ))
    .unwrap();
    assert_eq!(fs::metadata(fx.root().join("d/plain")).unwrap().mtime(), 0);
    assert_eq!(fs::read(fx.root().join("d/old")).unwrap(), BODY);
    assert_eq!(fx.read("d/dir"), "index");

    // A remote archive is not extracted; a local source and a URL together.
    put(fx.ctx(), "local.txt", "local");
    fx.run(&format!("ADD local.txt {} /mix/", s.url("/a.tar.gz")))
        .unwrap();
    assert_eq!(fs::read(fx.root().join("mix/a.tar.gz")).unwrap(), tar_gz());
    assert_eq!(fx.read("mix/local.txt"), "local");
}

#[test]
fn file_names_follow_buildkit() {
    assert_eq!(file_name("http://h/a/b.tgz?x=1#f"), "b.tgz");
    assert_eq!(file_name("http://h/a/dir/"), "dir");
    assert_eq!(file_name("http://h/"), "__unnamed__");
    assert_eq!(file_name("http://h"), "__unnamed__");
    assert_eq!(file_name("http://h/a%20b"), "a b");
    assert_eq!(file_name("http://h/x/%2E%2E"), "__unnamed__");
}

#[test]
fn the_key_and_the_write_share_one_fetch() {
    let s = server();
    let fx = Fx::new();
    let line = format!("ADD {} /t", s.url("/dir/tool.sh"));
    let first = fx.digest(&line);
    fx.run(&line).unwrap();
    assert_eq!(fx.digest(&line), first);
    assert_eq!(s.hits("/dir/tool.sh"), 1);
    assert_eq!(fs::read(fx.root().join("t")).unwrap(), BODY);

    // The downloads go with the build.
    let scratch = tempfile::tempdir().unwrap();
    let mut downloads = Downloads::new(scratch.path());
    downloads.get(&s.url("/plain"), None).unwrap();
    assert_eq!(
        fs::read_dir(scratch.path()).unwrap().count(),
        2,
        "dir and lock"
    );
    drop(downloads);
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn checksums_are_checked_and_a_mismatch_writes_nothing() {
    let s = server();
    let fx = Fx::new();
    let url = s.url("/dir/tool.sh");
    fx.run(&format!("ADD --checksum={} {url} /ok", sum(BODY)))
        .unwrap();
    assert_eq!(fs::read(fx.root().join("ok")).unwrap(), BODY);

    let fx = Fx::new();
    let wrong = sum(b"something else");
    let err = fx
        .run(&format!("ADD --checksum={wrong} {url} /dir/bad"))
        .unwrap_err();
    assert!(matches!(err, FilesError::Checksum { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&wrong) && text.contains(&sum(BODY)) && text.contains(&url),
        "{text}"
    );
    assert_eq!(fx.tree(), Vec::<String>::new(), "nothing written");

    // sha512 checksums too.
    let sha512 = Digest::of_with(kiln_store::Algorithm::Sha512, BODY).to_string();
    fx.run(&format!("ADD --checksum={sha512} {url} /ok512"))
        .unwrap();
    assert_eq!(fs::read(fx.root().join("ok512")).unwrap(), BODY);
}

#[test]
fn http_errors_and_refused_connections_name_the_url() {
    let s = server();
    let fx = Fx::new();
    let missing = s.url("/missing");
    let err = fx.run(&format!("ADD {missing} /m")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&missing) && text.contains("404 Not Found"),
        "{text}"
    );
    assert!(fx.try_digest(&format!("ADD {missing} /m")).is_err());

    let refused = format!("http://{}/f", refused_addr());
    let err = fx.run(&format!("ADD {refused} /r")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&refused) && text.contains("connection refused"),
        "{text}"
    );
    assert_eq!(fx.tree(), Vec::<String>::new());
}

#[test]
fn the_cache_input_is_the_checksum_when_given_else_the_content() {
    // Pinned: no request at all (nothing listens there).
    let fx = Fx::new();
    let nowhere = format!("http://{}/f", refused_addr());
    let pinned = format!("ADD --checksum={} {nowhere} /f", sum(BODY));
    assert_eq!(fx.digest(&pinned), fx.digest(&pinned));
    let input = fx
        .downloads
        .borrow_mut()
        .input(&nowhere, Some(&sum(BODY)))
        .unwrap();
    assert_eq!(input, UrlInput::Pinned(Digest::of(BODY)));

    // Fetched: the content's digest, the very value a checksum would pin.
    let s = server();
    let input = fx
        .downloads
        .borrow_mut()
        .input(&s.url("/dir/tool.sh"), None)
        .unwrap();
    let UrlInput::Fetched {
        digest,
        last_modified,
    } = input
    else {
        panic!("{input:?}")
    };
    assert_eq!(digest.to_string(), sum(BODY));
    assert!(last_modified.is_some());
    // Another content at another URL: another key.
    assert_ne!(
        fx.digest(&format!("ADD {} /f", s.url("/plain"))),
        fx.digest(&format!("ADD {} /f", s.url("/dir/tool.sh")))
    );
}
