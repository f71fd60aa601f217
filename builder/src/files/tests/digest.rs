//! `input_digest` covers exactly what a transfer selects: content and metadata of those
//! files, and the transfer's own fields; nothing else, and not mtimes.

use std::os::unix::fs::symlink;

use filetime::FileTime;

use super::*;

#[test]
fn changes_with_selected_content_and_mode_only() {
    let mut fx = Fx::new();
    put(fx.ctx(), "src/a.rs", "fn a() {}");
    put(fx.ctx(), "src/b.rs", "fn b() {}");
    put(fx.ctx(), "src/notes.md", "notes");
    put(fx.ctx(), "src/ignored.tmp", "x");
    put(fx.ctx(), "README", "read me");
    fx.ignore = Dockerignore::parse("**/*.tmp\n");
    let line = "COPY --exclude=*.md src /app/";
    let first = fx.digest(line);
    assert_eq!(fx.digest(line), first);

    // Unselected: another file of the context, an excluded one, an ignored one, an mtime.
    put(fx.ctx(), "README", "changed");
    put(fx.ctx(), "src/notes.md", "changed");
    put(fx.ctx(), "src/ignored.tmp", "changed");
    put(fx.ctx(), "new-top-level", "new");
    filetime::set_file_mtime(fx.ctx().join("src/a.rs"), FileTime::from_unix_time(5, 0)).unwrap();
    assert_eq!(fx.digest(line), first);

    // Selected: content, mode, a new file, a symlink's target.
    put(fx.ctx(), "src/a.rs", "fn a() { 1 }");
    let content = fx.digest(line);
    assert_ne!(content, first);
    chmod(fx.ctx(), "src/a.rs", 0o755);
    let mode = fx.digest(line);
    assert_ne!(mode, content);
    symlink("a.rs", fx.ctx().join("src/link")).unwrap();
    let linked = fx.digest(line);
    assert_ne!(linked, mode);
    std::fs::remove_file(fx.ctx().join("src/link")).unwrap();
    symlink("b.rs", fx.ctx().join("src/link")).unwrap();
    assert_ne!(fx.digest(line), linked);
}

#[test]
fn changes_with_the_transfers_own_fields() {
    let fx = Fx::new();
    put(fx.ctx(), "f", "x");
    let base = fx.digest("COPY f /a");
    for other in [
        "COPY f /b",
        "COPY --chmod=600 f /a",
        "COPY --chown=1:1 f /a",
        "ADD f /a",
        "COPY --link f /a",
    ] {
        assert_ne!(fx.digest(other), base, "{other}");
    }
    // Heredoc content is part of the key.
    assert_ne!(
        fx.digest("COPY <<EOF /x\none\nEOF"),
        fx.digest("COPY <<EOF /x\ntwo\nEOF")
    );
}

#[test]
fn wildcards_select_by_name() {
    let fx = Fx::new();
    put(fx.ctx(), "a.txt", "a");
    put(fx.ctx(), "b.md", "b");
    let line = "COPY *.txt /t/";
    let first = fx.digest(line);
    put(fx.ctx(), "b.md", "changed");
    assert_eq!(fx.digest(line), first);
    put(fx.ctx(), "c.txt", "new match");
    assert_ne!(fx.digest(line), first);
}

#[test]
fn tree_sources_include_owners() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let stage = tempfile::tempdir().unwrap();
    put(stage.path(), "bin", "b");
    let t = transfer("COPY --from=x /bin /bin");
    let scratch = tempfile::tempdir().unwrap();
    let mut downloads = Downloads::new(scratch.path());
    let mut d =
        |t: &Transfer| input_digest(&Source::Tree(stage.path()), t, &mut downloads).unwrap();
    let first = d(&t);
    std::os::unix::fs::lchown(stage.path().join("bin"), Some(5), Some(5)).unwrap();
    assert_ne!(d(&t), first);
}
