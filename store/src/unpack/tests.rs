use std::{
    fs,
    io::Write as _,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::Path,
};

use tar::{EntryType, Header};

use super::{meta::parse_pax_time, *};

/// One tar entry: the tar crate refuses to write `..` and absolute names, so names and
/// link targets are written into the header raw.
#[derive(Clone)]
enum E<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// path, mode, uid, gid, mtime, content
    Owned(&'a str, u32, u64, u64, u64, &'a str),
    Dev(&'a str, EntryType, u32, u32),
    /// xattrs for the next entry
    Xattr(&'a str, &'a [u8]),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        h.set_mode(0o755);
        h.set_mtime(1_500_000_000);
        h.set_size(0);
        let raw =
            |h: &mut Header, p: &str| h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
        match *e {
            E::File(p, c) | E::Owned(p, _, _, _, _, c) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(c.len() as u64);
                if let E::Owned(_, mode, uid, gid, mtime, _) = *e {
                    h.set_mode(mode);
                    h.set_uid(uid);
                    h.set_gid(gid);
                    h.set_mtime(mtime);
                }
                raw(&mut h, p);
                h.set_cksum();
                b.append(&h, c.as_bytes()).unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(EntryType::Directory);
                raw(&mut h, p);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            E::Sym(p, t) | E::Hard(p, t) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                });
                raw(&mut h, p);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            E::Dev(p, kind, major, minor) => {
                h.set_entry_type(kind);
                h.set_mode(0o640);
                h.set_device_major(major).unwrap();
                h.set_device_minor(minor).unwrap();
                raw(&mut h, p);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            E::Xattr(k, v) => {
                b.append_pax_extensions([(format!("SCHILY.xattr.{k}").as_str(), v)])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn unpack(tar: &[u8], dest: &Path, mode: UnpackMode) -> Result<Unpacked> {
    unpack_layer(tar, dest, &UnpackOptions::new(mode), "layer t")
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn need_root() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("skipping: needs root");
    false
}

/// Every path below `dir` with its type, for "nothing else changed" checks.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let ft = e.file_type().unwrap();
            let rel = e.path().strip_prefix(base).unwrap().display().to_string();
            out.push(format!(
                "{rel} {}",
                if ft.is_dir() {
                    "d"
                } else if ft.is_symlink() {
                    "l"
                } else {
                    "f"
                }
            ));
            if ft.is_dir() {
                walk(&e.path(), base, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// A sandbox: `root` to unpack into, and `outside/victim` beside it that must survive.
fn sandbox() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"untouched").unwrap();
    (t, root, outside)
}

fn assert_outside_untouched(t: &Path, outside: &Path) {
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"untouched");
    assert_eq!(listing(outside), ["victim f"]);
    let mut top: Vec<_> = fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["outside", "root"]);
}

#[test]
fn refuses_every_escape_and_writes_nothing_outside() {
    for mode in [UnpackMode::Overlay, UnpackMode::Applied] {
        for (entries, reason) in [
            (vec![E::File("../victim", "x")], "contains '..'"),
            (
                vec![E::File("a/../../outside/victim", "x")],
                "contains '..'",
            ),
            (vec![E::File("/etc/passwd-kiln-test", "x")], "is absolute"),
            (vec![E::Hard("x", "/etc/passwd")], "is absolute"),
            (vec![E::Hard("x", "../outside/victim")], "contains '..'"),
            (vec![E::Sym("x", "../../outside")], "points outside"),
            (
                vec![E::Sym("evil", "/"), E::File("evil/tmp/kiln-escape", "x")],
                "through the symlink",
            ),
            (
                vec![E::Sym("d", "/tmp"), E::Dir("d/x/"), E::File("d/x/y", "x")],
                "through the symlink",
            ),
            (
                vec![E::Sym("l", "/etc"), E::Hard("h", "l/passwd")],
                "through the symlink",
            ),
            (vec![E::File("a/.wh..", "")], "no valid name"),
            (vec![E::File(".wh.", "")], "no valid name"),
            (vec![E::File("h", "x"), E::Hard("h", "h")], "to itself"),
        ] {
            let (t, root, outside) = sandbox();
            let err = unpack(&tar_of(&entries), &root, mode).unwrap_err();
            assert!(matches!(err, Error::UnsafePath { .. }), "{mode:?}: {err}");
            assert!(err.to_string().contains(reason), "{mode:?}: {err}");
            assert_outside_untouched(t.path(), &outside);
        }
    }
    assert!(!Path::new("/tmp/kiln-escape").exists());
}

#[test]
fn applied_form_never_writes_through_what_earlier_layers_left() {
    let (t, root, outside) = sandbox();
    let out = outside.to_str().unwrap();
    let victim = format!("{out}/victim");
    // The layers below: symlinks pointing out of the tree (absolute ones are legal: they
    // resolve inside the container at run time).
    let below = tar_of(&[
        E::Sym("evil", out),
        E::Sym("link", &victim),
        E::Dir("d/"),
        E::Sym("d/up", out),
        E::Sym("s2", out),
    ]);
    unpack(&below, &root, UnpackMode::Applied).unwrap();
    let layer = tar_of(&[
        E::File("evil/x", "in the tree"), // a directory replaces the symlink
        E::File("link", "replaced"),      // the symlink is replaced, not written through
        E::File("d/up/.wh.victim", ""),   // whiteouts never reach through a symlink
        E::File("d/up/.wh..wh..opq", ""),
    ]);
    unpack(&layer, &root, UnpackMode::Applied).unwrap();
    assert_outside_untouched(t.path(), &outside);
    assert!(fs::symlink_metadata(root.join("evil")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("evil/x")).unwrap(), b"in the tree");
    assert!(fs::symlink_metadata(root.join("link")).unwrap().is_file());
    assert!(fs::symlink_metadata(root.join("d/up")).unwrap().is_dir());
    // A hard link through a symlink of an earlier layer is refused.
    let err = unpack(
        &tar_of(&[E::Sym("s", out), E::Hard("h", "s/victim")]),
        &root,
        UnpackMode::Applied,
    );
    assert!(err.is_err());
    let err = unpack(
        &tar_of(&[E::Hard("h2", "s2/victim")]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a file inside the tree"),
        "{err}"
    );
    assert_outside_untouched(t.path(), &outside);
}

#[test]
fn applied_form_carries_out_whiteouts() {
    let (_t, root, _) = sandbox();
    unpack(
        &tar_of(&[
            E::Dir("a/"),
            E::File("a/gone", "1"),
            E::File("a/kept", "2"),
            E::Dir("o/"),
            E::File("o/old", "old"),
            E::Dir("o/sub/"),
            E::File("o/sub/old", "old"),
            E::Dir("tree/"),
            E::File("tree/deep", "d"),
        ]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap();
    unpack(
        &tar_of(&[
            E::File("a/.wh.gone", ""),
            E::File(".wh.tree", ""),
            E::Dir("o/"),
            // Written before the opaque marker (as '+' sorts before '.'): it stays.
            E::File("o/+new", "new"),
            E::File("o/sub/new", "new"),
            E::File("o/.wh..wh..opq", ""),
            E::File("o/.wh..wh.plnk", ""),
            E::File(".wh.never-there", ""),
        ]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap();
    assert_eq!(
        listing(&root),
        [
            "a d",
            "a/kept f",
            "o d",
            "o/+new f",
            "o/sub d",
            "o/sub/new f"
        ]
    );
}

#[test]
fn overlay_form_writes_whiteouts_as_overlayfs_does() {
    if !need_root() {
        return; // mknod of a whiteout and trusted.* xattrs need root
    }
    for ns in [OverlayXattrs::Trusted, OverlayXattrs::User] {
        let (_t, root, _) = sandbox();
        let options = UnpackOptions {
            mode: UnpackMode::Overlay,
            overlay_xattrs: ns,
        };
        let tar = tar_of(&[
            E::Dir("a/"),
            E::File("a/.wh.gone", ""),
            E::Dir("o/"),
            E::File("o/.wh..wh..opq", ""),
            E::File("o/new", "n"),
            E::File(".wh.top", ""),
            // An overlay marker inside a layer is dropped, never applied.
            E::Xattr("trusted.overlay.opaque", b"y"),
            E::Dir("sneaky/"),
        ]);
        unpack_layer(&tar[..], &root, &options, "t").unwrap();
        for wh in ["a/gone", "top"] {
            let m = fs::symlink_metadata(root.join(wh)).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{wh}");
        }
        assert_eq!(
            xattr::get(root.join("o"), ns.opaque()).unwrap().as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            xattr::get(root.join("sneaky"), "trusted.overlay.opaque").unwrap(),
            None
        );
        assert_eq!(fs::read(root.join("o/new")).unwrap(), b"n");
    }
}

#[test]
fn keeps_modes_owners_times_links_xattrs_and_devices() {
    if !need_root() {
        return;
    }
    let capability: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let tar = tar_of(&[
        E::Dir("bin/"),
        E::Owned("bin/suid", 0o4755, 0, 0, 1_600_000_000, "tool"),
        E::Hard("bin/suid-link", "bin/suid"),
        E::Owned("home-file", 0o640, 1000, 42, 1_600_000_001, "mine"),
        E::Xattr("security.capability", capability),
        E::Owned("ping", 0o755, 0, 0, 1_600_000_002, "ping"),
        E::Xattr("user.origin", b"kiln"),
        E::Dir("readonly/"),
        E::File("readonly/inside", "x"),
        E::Sym("sym", "/bin/suid"),
        E::Dev("null", EntryType::Char, 1, 3),
        E::Dev("loop9", EntryType::Block, 7, 9),
        E::Dev("fifo", EntryType::Fifo, 0, 0),
    ]);
    // A read-only directory with content, and a directory's mtime set after its content.
    let mut tar = tar;
    {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o555);
        h.set_mtime(1_400_000_000);
        h.set_size(0);
        b.append_data(&mut h, "readonly/", io::empty()).unwrap();
        let extra = b.into_inner().unwrap();
        // Splice before the end-of-archive blocks.
        tar.truncate(tar.len() - 1024);
        tar.extend_from_slice(&extra);
    }
    for mode in [UnpackMode::Overlay, UnpackMode::Applied] {
        let (_t, root, _) = sandbox();
        let unpacked = unpack(&tar, &root, mode).unwrap();
        assert_eq!(unpacked.diff_id, Digest::of(&tar));
        let m = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!(m("bin/suid").mode() & 0o7777, 0o4755);
        assert_eq!(m("bin/suid").ino(), m("bin/suid-link").ino());
        assert_eq!(m("bin/suid").mtime(), 1_600_000_000);
        assert_eq!((m("home-file").uid(), m("home-file").gid()), (1000, 42));
        assert_eq!(m("home-file").mode() & 0o7777, 0o640);
        assert_eq!(
            xattr::get(root.join("ping"), "security.capability")
                .unwrap()
                .as_deref(),
            Some(capability)
        );
        assert_eq!(
            xattr::get(root.join("readonly"), "user.origin")
                .unwrap()
                .as_deref(),
            Some(&b"kiln"[..])
        );
        assert_eq!(
            fs::read_link(root.join("sym")).unwrap(),
            Path::new("/bin/suid")
        );
        assert_eq!(m("sym").mtime(), 1_500_000_000);
        assert!(m("null").file_type().is_char_device());
        assert_eq!(m("null").rdev(), libc::makedev(1, 3));
        assert!(m("loop9").file_type().is_block_device());
        assert_eq!(m("loop9").rdev(), libc::makedev(7, 9));
        assert!(m("fifo").file_type().is_fifo());
        assert_eq!(m("fifo").mode() & 0o7777, 0o640);
        assert_eq!(m("readonly").permissions().mode() & 0o7777, 0o555);
        assert_eq!(m("readonly").mtime(), 1_400_000_000);
        assert_eq!(m("bin").mtime(), 1_500_000_000);
    }
}

#[test]
fn applied_form_links_to_files_of_earlier_layers_and_replaces_them() {
    let (_t, root, _) = sandbox();
    unpack(
        &tar_of(&[
            E::File("base", "base"),
            E::Dir("dir/"),
            E::File("dir/f", "f"),
        ]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap();
    unpack(
        &tar_of(&[
            E::Hard("link", "base"),
            E::File("dir", "a file replaces the directory"),
        ]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap();
    let ino = |p: &str| fs::metadata(root.join(p)).unwrap().ino();
    assert_eq!(ino("base"), ino("link"));
    assert_eq!(
        fs::read(root.join("dir")).unwrap(),
        b"a file replaces the directory"
    );
    // Rewriting one name of a hard-linked pair does not write through to the other.
    unpack(
        &tar_of(&[E::File("link", "new")]),
        &root,
        UnpackMode::Applied,
    )
    .unwrap();
    assert_eq!(fs::read(root.join("base")).unwrap(), b"base");
    assert_eq!(fs::read(root.join("link")).unwrap(), b"new");
}

#[test]
fn reads_compressed_layers_and_refuses_truncated_ones() {
    let tar = tar_of(&[E::Dir("a/"), E::File("a/f", "content")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let (_t, root, _) = sandbox();
    let unpacked = unpack(&gz, &root, UnpackMode::Applied).unwrap();
    assert_eq!(unpacked.compression, Compression::Gzip);
    assert_eq!(unpacked.diff_id, Digest::of(&tar));
    assert_eq!(unpacked.entries, 2);
    assert_eq!(fs::read(root.join("a/f")).unwrap(), b"content");

    // Inside a header, inside the data, right after the data (no end-of-archive marker).
    for cut in [512 + 100, 512 * 2 + 3, 512 * 3] {
        let (_t, root, _) = sandbox();
        let err = unpack(&tar[..cut], &root, UnpackMode::Applied).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "cut {cut}: {err}");
    }
}

#[test]
fn pax_times_keep_their_fraction() {
    assert_eq!(
        parse_pax_time("1600000000.5"),
        Some((1_600_000_000, 500_000_000))
    );
    assert_eq!(parse_pax_time("12"), Some((12, 0)));
    assert_eq!(parse_pax_time("-1.5"), Some((-2, 500_000_000)));
    assert_eq!(parse_pax_time("x"), None);
}
