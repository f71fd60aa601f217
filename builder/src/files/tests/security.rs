//! Symlinks in the context and in the destination root never take a read or a write
//! outside them: links to an absolute host path (`/etc/passwd`-like) and climbing ones
//! (`../..`), in both places.

use std::{fs, os::unix::fs::symlink, path::Path};

use super::*;

/// A host directory outside both trees, with a file kiln must neither read nor touch.
fn outside() -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    fs::write(&file, "host secret\n").unwrap();
    (dir, file)
}

/// `../` enough times to reach `/` from anywhere in a temp dir.
fn climb(to: &Path) -> String {
    format!("../../../../../../../..{}", to.display())
}

#[test]
fn context_symlinks_are_copied_as_links_never_followed_out() {
    let fx = Fx::new();
    let (_keep, secret) = outside();
    put(fx.ctx(), "dir/ok", "ok");
    symlink(&secret, fx.ctx().join("dir/abs")).unwrap();
    symlink(climb(&secret), fx.ctx().join("dir/up")).unwrap();
    symlink("/etc/passwd", fx.ctx().join("dir/etc")).unwrap();
    fx.run("COPY dir /d/").unwrap();
    // Inside a directory: links stay links with their targets as written.
    assert_eq!(fs::read_link(fx.root().join("d/abs")).unwrap(), secret);
    assert!(
        fs::symlink_metadata(fx.root().join("d/up"))
            .unwrap()
            .is_symlink()
    );

    // Named as sources, they are followed inside the context: nothing there, not found.
    symlink(&secret, fx.ctx().join("abs")).unwrap();
    symlink(climb(&secret), fx.ctx().join("up")).unwrap();
    symlink("../..", fx.ctx().join("dotdot")).unwrap();
    for line in [
        "COPY abs /x",
        "COPY up /x",
        "COPY dir/etc /x",
        "COPY ../../../etc/passwd /x",
    ] {
        let err = fx.run(line).unwrap_err();
        assert!(matches!(err, FilesError::NotFound { .. }), "{line}: {err}");
    }
    // ... and when the context has that path, it is the context's file that is read.
    let below = secret
        .strip_prefix("/")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    put(fx.ctx(), &below, "context copy\n");
    put(fx.ctx(), "etc/passwd", "context passwd\n");
    fx.run("COPY abs /from-abs").unwrap();
    fx.run("COPY dir/etc /from-etc").unwrap();
    fx.run("COPY ../../etc/passwd /from-dots").unwrap();
    fx.run("COPY dotdot/etc/passwd /from-link").unwrap();
    assert_eq!(fx.read("from-abs"), "context copy\n");
    assert_eq!(fx.read("from-etc"), "context passwd\n");
    assert_eq!(fx.read("from-dots"), "context passwd\n");
    assert_eq!(fx.read("from-link"), "context passwd\n");
    // Wildcards follow the same rule.
    fx.run("COPY ab* /w/").unwrap();
    assert_eq!(fx.read("w/abs"), "context copy\n");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
}

#[test]
fn root_symlinks_keep_writes_inside_the_root() {
    let fx = Fx::new();
    let (keep, secret) = outside();
    put(fx.ctx(), "a.txt", "A");
    put(fx.ctx(), "dir/passwd", "P");
    put(fx.ctx(), "dir/sub/x", "X");
    // The image holds links to the host's file and directory, absolute and climbing.
    symlink(&secret, fx.root().join("target")).unwrap();
    symlink(keep.path(), fx.root().join("absdir")).unwrap();
    symlink(climb(keep.path()), fx.root().join("updir")).unwrap();
    symlink("../..", fx.root().join("dotdot")).unwrap();
    fx.run("COPY a.txt /target").unwrap();
    fx.run("COPY a.txt /absdir/").unwrap();
    fx.run("COPY a.txt /updir/new").unwrap();
    fx.run("COPY a.txt /dotdot/dotdot/top").unwrap();
    fx.run("COPY dir /absdir/").unwrap();
    // Everything landed under the root, at the links' targets read inside it.
    let inside = |p: &Path| fx.root().join(p.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside(&secret)).unwrap(), "A");
    assert_eq!(
        fs::read_to_string(inside(keep.path()).join("a.txt")).unwrap(),
        "A"
    );
    assert_eq!(
        fs::read_to_string(inside(keep.path()).join("new")).unwrap(),
        "A"
    );
    assert_eq!(
        fs::read_to_string(inside(keep.path()).join("passwd")).unwrap(),
        "P"
    );
    assert_eq!(fx.read("top"), "A");
    // The host's side is untouched.
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
    let names: Vec<_> = fs::read_dir(keep.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["secret"]);

    // A link where a copied directory's file goes is replaced, not written through; one
    // where a directory goes is refused.
    fs::create_dir(fx.root().join("d")).unwrap();
    symlink(&secret, fx.root().join("d/passwd")).unwrap();
    fx.run("COPY dir /d/").unwrap();
    assert_eq!(fx.read("d/passwd"), "P");
    fs::remove_dir_all(fx.root().join("d/sub")).unwrap();
    symlink(keep.path(), fx.root().join("d/sub")).unwrap();
    let err = fx.run("COPY dir /d/").unwrap_err();
    assert!(matches!(err, FilesError::Conflict { .. }), "{err}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
    assert!(!keep.path().join("x").exists());
}

#[test]
fn chown_reads_the_roots_passwd_not_the_hosts() {
    let fx = Fx::new();
    let (_keep, secret) = outside();
    fs::write(&secret, "evil:x:7:7::/:/bin/sh\n").unwrap();
    put(fx.ctx(), "f", "");
    fs::create_dir(fx.root().join("etc")).unwrap();
    symlink(&secret, fx.root().join("etc/passwd")).unwrap();
    let err = fx.run("COPY --chown=evil f /f").unwrap_err().to_string();
    assert!(err.contains("unable to find user evil"), "{err}");
}
