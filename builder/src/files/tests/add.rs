//! ADD: local tar archives (plain, gzip, bzip2, xz, zstd, told apart by content) are
//! extracted; anything else is copied; git URLs are refused for now (http(s) files: url.rs).

use std::{fs, io::Write, os::unix::fs::MetadataExt};

use super::*;

/// A tar with a directory, a file (0640, mtime 1234567890), a symlink and a hard link.
fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_size(0);
    h.set_mtime(1_234_567_890);
    b.append_data(&mut h, "top/", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o640);
    h.set_size(5);
    h.set_uid(12);
    h.set_gid(34);
    h.set_mtime(1_234_567_890);
    b.append_data(&mut h, "top/file", &b"hello"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "top/link", "file").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "top/hard", "top/file").unwrap();
    b.into_inner().unwrap()
}

fn compress(kind: &str, raw: &[u8]) -> Vec<u8> {
    match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "zstd" => zstd::encode_all(raw, 1).unwrap(),
        _ => raw.to_vec(),
    }
}

#[test]
fn archives_of_each_compression_are_extracted() {
    for kind in ["plain", "gzip", "bzip2", "xz", "zstd"] {
        let fx = Fx::new();
        // The name says nothing: content decides.
        fs::write(fx.ctx().join("archive.bin"), compress(kind, &tar_bytes())).unwrap();
        fx.run("ADD archive.bin /opt/x").unwrap();
        assert_eq!(fx.read("opt/x/top/file"), "hello", "{kind}");
        assert_eq!(fx.mode("opt/x/top"), 0o750, "{kind}");
        let m = fs::symlink_metadata(fx.root().join("opt/x/top/file")).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.mtime()),
            (0o640, 1_234_567_890),
            "{kind}"
        );
        if is_root() {
            assert_eq!((m.uid(), m.gid()), (12, 34), "{kind}");
        }
        let hard = fs::metadata(fx.root().join("opt/x/top/hard")).unwrap();
        assert_eq!(hard.ino(), m.ino(), "{kind}");
        assert_eq!(
            fs::read_link(fx.root().join("opt/x/top/link"))
                .unwrap()
                .to_str(),
            Some("file")
        );
        // COPY never extracts.
        fx.run("COPY archive.bin /copied").unwrap();
        assert!(fs::metadata(fx.root().join("copied")).unwrap().is_file());
    }
}

#[test]
fn non_archives_are_copied_and_git_urls_refused() {
    let fx = Fx::new();
    put(fx.ctx(), "fake.tar.gz", "not an archive");
    fx.run("ADD fake.tar.gz /f/").unwrap();
    assert_eq!(fx.read("f/fake.tar.gz"), "not an archive");
    let d = dockerfile::parse("D", "FROM x\nADD https://example.invalid/r.git#main /x/\n").unwrap();
    let err = Transfer::from_instruction(&d.instructions[1]).unwrap_err();
    assert!(matches!(err, FilesError::Git { .. }), "{err}");
    let bad = dockerfile::parse("D", "FROM x\nADD --checksum=sha256:00 local /x\n").unwrap();
    assert!(Transfer::from_instruction(&bad.instructions[1]).is_err());
}

#[test]
fn archive_entries_cannot_leave_the_destination() {
    let fx = Fx::new();
    let (keep, secret) = {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        fs::write(&f, "host").unwrap();
        (dir, f)
    };
    // A symlink to a host directory, then a file through it.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "esc", keep.path()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "esc/secret", &b"bad"[..]).unwrap();
    fs::write(fx.ctx().join("through.tar"), b.into_inner().unwrap()).unwrap();
    fx.run("ADD through.tar /x/").unwrap();
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host");
    let inside = fx
        .root()
        .join(keep.path().strip_prefix("/").unwrap())
        .join("secret");
    assert_eq!(fs::read_to_string(inside).unwrap(), "bad");

    // `..` that climbs out of the destination is refused.
    let mut raw = tar_bytes();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    // set_path refuses `..`; write the name into the header directly.
    h.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"bad"[..]).unwrap();
    raw = [&raw[..raw.len() - 1024], &b.into_inner().unwrap()].concat();
    fs::write(fx.ctx().join("dots.tar"), raw).unwrap();
    let err = fx.run("ADD dots.tar /y/").unwrap_err();
    assert!(matches!(err, FilesError::Archive { .. }), "{err}");
    assert!(!fx.root().join("escaped").exists());
}
