//! COPY's semantics: destinations, wildcards, directories, flags, heredocs, links.

use std::{fs, os::unix::fs::MetadataExt, os::unix::fs::symlink};

use filetime::FileTime;

use super::*;

#[test]
fn file_destinations_follow_the_trailing_slash_rule() {
    let fx = Fx::new();
    put(fx.ctx(), "a.txt", "A");
    put(fx.ctx(), "b.txt", "B");
    fx.run("COPY a.txt /x").unwrap();
    assert_eq!(fx.read("x"), "A");
    fx.run("COPY a.txt /d/e/").unwrap();
    assert_eq!(fx.read("d/e/a.txt"), "A");
    assert_eq!(fx.mode("d"), 0o755);
    // An existing directory takes the file by name, slash or not.
    fx.run("COPY b.txt /d").unwrap();
    assert_eq!(fx.read("d/b.txt"), "B");
    // Several sources mean a directory.
    fx.run("COPY a.txt b.txt /many").unwrap();
    assert_eq!(fx.read("many/b.txt"), "B");
    // Relative destinations resolve against WORKDIR; `.` is WORKDIR itself.
    fx.run_in("COPY a.txt rel", "/app").unwrap();
    fx.run_in("COPY b.txt .", "/app").unwrap();
    assert_eq!(
        (fx.read("app/rel"), fx.read("app/b.txt")),
        ("A".into(), "B".into())
    );
    // A file over a file replaces it.
    fx.run("COPY b.txt /x").unwrap();
    assert_eq!(fx.read("x"), "B");
}

#[test]
fn wildcards_match_go_style_one_segment_each() {
    let fx = Fx::new();
    for f in [
        "a1.txt",
        "a2.txt",
        "ab.txt",
        "b.md",
        "src/x/main.rs",
        "src/y/main.rs",
        "src/y/lib.rs",
    ] {
        put(fx.ctx(), f, f);
    }
    fx.run("COPY a?.txt /q/").unwrap();
    fx.run("COPY [ab]*.md /c/").unwrap();
    fx.run("COPY src/*/main.rs /m/").unwrap();
    fx.run("COPY *.none /none/").unwrap(); // an empty wildcard is no error (BuildKit)
    assert_eq!(
        fx.tree(),
        vec![
            "c/",
            "c/b.md",
            "m/",
            "m/main.rs",
            "q/",
            "q/a1.txt",
            "q/a2.txt",
            "q/ab.txt"
        ]
    );
    // One match to a plain name is that file (`COPY target/*.jar app.jar`).
    fx.run("COPY b*.md /one.md").unwrap();
    assert_eq!(fx.read("one.md"), "b.md");
}

#[test]
fn a_directory_gives_its_contents_with_modes_and_mtimes() {
    let fx = Fx::new();
    put(fx.ctx(), "dir/sub/f", "F");
    put(fx.ctx(), "dir/top", "T");
    chmod(fx.ctx(), "dir/sub", 0o750);
    chmod(fx.ctx(), "dir/top", 0o4711);
    let t = FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(fx.ctx().join("dir/top"), t).unwrap();
    filetime::set_file_mtime(fx.ctx().join("dir/sub"), t).unwrap();
    fx.run("COPY dir /d").unwrap();
    assert_eq!(fx.tree(), vec!["d/", "d/sub/", "d/sub/f", "d/top"]);
    assert_eq!((fx.mode("d/sub"), fx.mode("d/top")), (0o750, 0o4711));
    let meta = fs::metadata(fx.root().join("d/top")).unwrap();
    assert_eq!(FileTime::from_last_modification_time(&meta), t);
    let dir = fs::metadata(fx.root().join("d/sub")).unwrap();
    assert_eq!(FileTime::from_last_modification_time(&dir), t);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    // The whole context.
    fx.run("COPY . /all/").unwrap();
    assert!(fx.exists("all/dir/sub/f"));
}

#[test]
fn missing_sources_name_the_pattern() {
    let fx = Fx::new();
    put(fx.ctx(), "here", "");
    let err = fx.run("COPY here nope.txt /x/").unwrap_err().to_string();
    assert_eq!(err, "\"nope.txt\": not found in the build context");
    let err = fx.run("COPY missing/*.txt /x/").unwrap_err().to_string();
    assert_eq!(err, "\"missing/*.txt\": not found in the build context");
}

#[test]
fn dockerignore_hides_files_and_reincludes() {
    let mut fx = Fx::new();
    for f in [
        "app/main.rs",
        "app/secret.key",
        "logs/a.log",
        "logs/keep/b.log",
    ] {
        put(fx.ctx(), f, f);
    }
    fx.ignore = Dockerignore::parse("**/*.key\nlogs\n!logs/keep/b.log\n");
    fx.run("COPY . /c/").unwrap();
    assert_eq!(
        fx.tree(),
        vec![
            "c/",
            "c/app/",
            "c/app/main.rs",
            "c/logs/",
            "c/logs/keep/",
            "c/logs/keep/b.log"
        ]
    );
    let err = fx.run("COPY app/secret.key /x").unwrap_err();
    assert!(matches!(err, FilesError::NotFound { .. }), "{err}");
    fx.run("COPY app/*.key /none/").unwrap();
    assert!(!fx.exists("none"));
}

#[test]
fn chmod_octal_and_symbolic_apply_to_files_and_directories() {
    let fx = Fx::new();
    put(fx.ctx(), "d/sub/f", "");
    chmod(fx.ctx(), "d/sub/f", 0o600);
    fx.run("COPY --chmod=640 d /o/").unwrap();
    assert_eq!((fx.mode("o/sub"), fx.mode("o/sub/f")), (0o640, 0o640));
    fx.run("COPY --chmod=go=rX,u+w d /s/").unwrap();
    assert_eq!((fx.mode("s/sub"), fx.mode("s/sub/f")), (0o755, 0o644));
    assert!(matches!(
        Transfer::from_instruction(
            &dockerfile::parse("D", "FROM x\nCOPY --chmod=99 a b\n")
                .unwrap()
                .instructions[1]
        ),
        Err(FilesError::Chmod { .. })
    ));
}

#[test]
fn chown_names_resolve_in_the_destination_root() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let fx = Fx::new();
    put(fx.ctx(), "f", "");
    put(
        fx.root(),
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    );
    put(
        fx.root(),
        "etc/group",
        "root:x:0:\napp:x:1001:\nstaff:x:50:\n",
    );
    let ids = |rel: &str| {
        let m = fs::symlink_metadata(fx.root().join(rel)).unwrap();
        (m.uid(), m.gid())
    };
    fx.run("COPY --chown=app f /a/b/").unwrap();
    assert_eq!(ids("a/b/f"), (1000, 1001));
    // Directories created on the way belong to the --chown user, as BuildKit makes them.
    assert_eq!((ids("a"), fx.mode("a")), ((1000, 1001), 0o755));
    fx.run("COPY --chown=app:staff f /n1").unwrap();
    assert_eq!(ids("n1"), (1000, 50));
    fx.run("COPY --chown=4242 f /n2").unwrap();
    assert_eq!(ids("n2"), (4242, 4242));
    fx.run("COPY --chown=7:8 f /n3").unwrap();
    assert_eq!(ids("n3"), (7, 8));
    let err = fx.run("COPY --chown=ghost f /n4").unwrap_err().to_string();
    assert!(err.contains("unable to find user ghost"), "{err}");
}

#[test]
fn parents_keep_the_path_below_the_pivot() {
    let fx = Fx::new();
    for f in [
        "pkg/a/package.json",
        "pkg/b/package.json",
        "pkg/b/other",
        "x/y/z.txt",
    ] {
        put(fx.ctx(), f, f);
    }
    chmod(fx.ctx(), "pkg/a", 0o700);
    fx.run("COPY --parents pkg/*/package.json x/./y/z.txt /out/")
        .unwrap();
    assert_eq!(
        fx.tree(),
        vec![
            "out/",
            "out/pkg/",
            "out/pkg/a/",
            "out/pkg/a/package.json",
            "out/pkg/b/",
            "out/pkg/b/package.json",
            "out/y/",
            "out/y/z.txt",
        ]
    );
    assert_eq!(fx.mode("out/pkg/a"), 0o700); // ancestors come with their own metadata
}

#[test]
fn exclude_filters_inside_directories_and_wildcard_matches() {
    let fx = Fx::new();
    for f in [
        "d/a.txt",
        "d/b.md",
        "d/keep.md",
        "d/sub/c.md",
        "home.txt",
        "home.md",
    ] {
        put(fx.ctx(), f, f);
    }
    fx.run("COPY --exclude=*.md --exclude=**/*.md --exclude=!keep.md d /o/")
        .unwrap();
    fx.run("COPY --exclude=*.txt hom* /h/").unwrap();
    assert_eq!(
        fx.tree(),
        vec!["h/", "h/home.md", "o/", "o/a.txt", "o/keep.md", "o/sub/"]
    );
}

#[test]
fn heredocs_become_files() {
    let fx = Fx::new();
    fx.run("COPY <<EOF /etc/motd\nhello\n  world\nEOF").unwrap();
    assert_eq!(fx.read("etc/motd"), "hello\n  world\n");
    assert_eq!(fx.mode("etc/motd"), 0o644);
    fx.run("COPY --chmod=755 <<run.sh <<\"two\" /bin/\necho 1\nrun.sh\n$X\ntwo")
        .unwrap();
    assert_eq!(
        (fx.read("bin/run.sh"), fx.read("bin/two")),
        ("echo 1\n".into(), "$X\n".into())
    );
    assert_eq!(fx.mode("bin/run.sh"), 0o755);
}

#[test]
fn links_stay_links() {
    let fx = Fx::new();
    put(fx.ctx(), "d/file", "F");
    fs::hard_link(fx.ctx().join("d/file"), fx.ctx().join("d/hard")).unwrap();
    symlink("file", fx.ctx().join("d/soft")).unwrap();
    symlink("d/file", fx.ctx().join("named")).unwrap();
    fx.run("COPY d /o/").unwrap();
    let (a, b) = (
        fs::metadata(fx.root().join("o/file")).unwrap(),
        fs::metadata(fx.root().join("o/hard")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        fs::read_link(fx.root().join("o/soft")).unwrap().to_str(),
        Some("file")
    );
    // A symlink named as a source is followed (inside the context), keeping its name.
    fx.run("COPY named /n/").unwrap();
    let m = fs::symlink_metadata(fx.root().join("n/named")).unwrap();
    assert!(m.is_file());
    assert_eq!(fx.read("n/named"), "F");
}

#[test]
fn tree_sources_keep_owners_and_context_files_become_root() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let fx = Fx::new();
    let stage = tempfile::tempdir().unwrap();
    put(stage.path(), "app/bin", "B");
    std::os::unix::fs::lchown(stage.path().join("app/bin"), Some(33), Some(44)).unwrap();
    let t = transfer("COPY --from=build /app /app");
    assert_eq!(t.from.as_deref(), Some("build"));
    apply(
        &Source::Tree(stage.path()),
        &t,
        fx.root(),
        "/",
        &mut fx.downloads.borrow_mut(),
    )
    .unwrap();
    let m = fs::metadata(fx.root().join("app/bin")).unwrap();
    assert_eq!((m.uid(), m.gid()), (33, 44));

    put(fx.ctx(), "own", "");
    std::os::unix::fs::lchown(fx.ctx().join("own"), Some(33), Some(44)).unwrap();
    fx.run("COPY own /own").unwrap();
    let m = fs::metadata(fx.root().join("own")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}
