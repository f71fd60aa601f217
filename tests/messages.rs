//! What a new user meets: each command run as typed, and the message checked for saying
//! what went wrong and what to do (no OS error twice, no "no such image" for a typo, no
//! usage line listing flags nobody forgot). Servers, where any, are on 127.0.0.1.

mod common;

use std::{fs, process::Command};

use common::{Kiln, raw_tar, require_tool, rich_rootfs, servers::free_port, sh};
use tar::EntryType;

/// A store holding `seed:1`, imported from the rich fixture rootfs.
fn seeded() -> Kiln {
    let kiln = Kiln::new();
    let input = kiln.file("seed.tar", &rich_rootfs());
    kiln.ok(&["import", &input, "seed:1"]);
    kiln
}

#[test]
fn a_kiln_save_archive_is_an_oci_archive_too() {
    let kiln = seeded();
    let bundle = kiln.scratch("bundle.tar");
    let bundle = bundle.to_str().unwrap();
    kiln.ok(&["save", "-o", bundle, "seed:1"]);
    // manifest.json and repositories sit beside the layout: skipped, not refused.
    kiln.ok(&["copy", &format!("oci-archive:{bundle}"), "kiln:copied:1"]);
    assert_eq!(kiln.image_id("copied:1"), kiln.image_id("seed:1"));
    // Files outside the layout may be anything, links and directories too.
    let odd = raw_tar(&[
        ("extra", EntryType::Directory, "", b""),
        ("extra/link", EntryType::Symlink, "../nowhere", b""),
    ]);
    let mut files = common::files_of(&fs::read(bundle).unwrap());
    files.push(("notes.txt".into(), b"beside the layout".to_vec()));
    let mut with_odd = common::tar_of_files(&files);
    // Splice the odd entries in before the end-of-archive blocks of the first tar.
    with_odd.truncate(with_odd.len() - 1024);
    let odd_body = &odd[..odd.len() - 1024];
    with_odd.extend_from_slice(odd_body);
    with_odd.extend_from_slice(&[0u8; 1024]);
    let odd_path = kiln.file("odd.tar", &with_odd);
    kiln.ok(&["copy", &format!("oci-archive:{odd_path}"), "kiln:odd:1"]);
    assert_eq!(kiln.image_id("odd:1"), kiln.image_id("seed:1"));
}

#[test]
fn a_truncated_oci_archive_says_truncated() {
    let kiln = seeded();
    let bundle = kiln.scratch("bundle.tar");
    let target = format!("oci-archive:{}", bundle.display());
    kiln.ok(&["copy", "kiln:seed:1", &target]);
    let bytes = fs::read(&bundle).unwrap();
    // Cut in the middle of the biggest entry, the layer. (Not at a fixed fraction of the
    // file: a tar is padded to 10 KiB records, and a small archive's padding can be a
    // third of it, so such a cut sometimes left every entry whole.)
    let mut archive = tar::Archive::new(&bytes[..]);
    let (start, size) = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.raw_file_position(), e.size())
        })
        .max_by_key(|(_, size)| *size)
        .unwrap();
    let cut = kiln.file("cut.tar", &bytes[..(start + size / 2) as usize]);
    let before = kiln.snapshot();
    let err = kiln.fails(&["copy", &format!("oci-archive:{cut}"), "kiln:cut:1"]);
    assert!(err.contains("truncated"), "{err}");
    assert!(!err.contains("digest mismatch"), "{err}");
    assert_eq!(kiln.snapshot(), before);
}

#[test]
fn a_failed_write_says_writing_not_reading() {
    let kiln = Kiln::new();
    // 4 MB that gzip cannot shrink, and a 1 MB limit on the size of files written: the
    // layer's write fails (EFBIG; a full disk fails the same way, with ENOSPC).
    let mut noise = Vec::with_capacity(4 << 20);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while noise.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let input = kiln.file(
        "noise.tar",
        &common::tar_of_files(&[("noise".into(), noise)]),
    );
    kiln.ok(&["images"]); // the store exists before the limit applies
    let out = Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 2048; exec \"$0\" import \"$1\" noise:1",
            env!("CARGO_BIN_EXE_kiln"),
            &input,
        ])
        .env("KILN_ROOT", kiln.root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("writing"), "{err}");
    assert!(!err.contains("reading"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_layer_that_is_a_dangling_link_says_so() {
    let kiln = Kiln::new();
    let layer = common::tar_of_files(&[("a".into(), b"a".to_vec())]);
    let config = serde_json::to_vec(&common::config_for(&[&layer])).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["linked:1"],
        "Layers": ["abc/layer.tar"],
    }]))
    .unwrap();
    let archive = raw_tar(&[
        ("manifest.json", EntryType::Regular, "", &manifest),
        ("config.json", EntryType::Regular, "", &config),
        ("abc/layer.tar", EntryType::Symlink, "../def/layer.tar", b""),
    ]);
    let path = kiln.file("linked.tar", &archive);
    let err = kiln.fails(&["load", "-i", &path]);
    assert!(
        err.contains("abc/layer.tar") && err.contains("is a link to def/layer.tar"),
        "{err}"
    );
}

#[test]
fn os_errors_are_said_once() {
    let kiln = Kiln::new();
    for args in [
        &["load", "-i", "nofile.tar"][..],
        &["import", "nofile.tar", "x:1"],
        &[
            "registry",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--htpasswd",
            "missing",
        ],
    ] {
        let err = kiln.fails(args);
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_mistyped_transport_lists_the_transports() {
    let kiln = Kiln::new();
    let err = kiln.fails(&["copy", "dockr://127.0.0.1:5000/x:1", "oci:./x"]);
    assert!(err.contains("unknown transport \"dockr\""), "{err}");
    assert!(
        err.contains("docker://REF") && err.contains("oci-archive:"),
        "{err}"
    );
    assert!(!err.contains("no such image"), "{err}");
    let err = kiln.fails(&["copy", "https://127.0.0.1:5000/x:1", "oci:./x"]);
    assert!(err.contains("docker://127.0.0.1:5000/x:1"), "{err}");
}

#[test]
fn a_url_for_an_image_says_drop_the_scheme() {
    let kiln = Kiln::new();
    let err = kiln.fails(&["pull", "https://127.0.0.1:5000/x:1"]);
    assert!(err.contains("write 127.0.0.1:5000/x:1"), "{err}");
    assert!(!err.contains("is not a port number"), "{err}");
}

#[test]
fn an_unknown_target_points_at_the_first_from() {
    let kiln = Kiln::new();
    let dir = kiln.scratch("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("Dockerfile"),
        "# syntax=docker/dockerfile:1\n\nFROM scratch AS base\nFROM base AS app\n",
    )
    .unwrap();
    let err = kiln.fails(&[
        "build",
        "--print=outline",
        "--target",
        "nope",
        dir.to_str().unwrap(),
    ]);
    assert!(err.contains(":3:1: target stage \"nope\""), "{err}");
    assert!(err.contains("3 | FROM scratch AS base"), "{err}");
    assert!(!err.contains("# syntax"), "{err}");
}

#[test]
fn an_unused_build_arg_is_warned_about_once() {
    let kiln = Kiln::new();
    let dir = kiln.scratch("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    let out = kiln.run(&[
        "build",
        "--print=outline",
        "--build-arg",
        "UNUSED=1",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all.matches("UNUSED").count(), 1, "{all}");
}

#[test]
fn tls_cert_without_key_says_what_is_missing() {
    let kiln = Kiln::new();
    let err = kiln.fails(&[
        "registry",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "x.pem",
    ]);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
    assert!(!err.contains("--root"), "{err}");
    let err = kiln.fails(&[
        "registry",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-key",
        "k.pem",
    ]);
    assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
}

#[test]
fn load_of_a_file_argument_hints_at_dash_i() {
    let kiln = Kiln::new();
    let err = kiln.fails(&["load", "bundle.tar"]);
    assert!(err.contains("kiln load -i bundle.tar"), "{err}");
}

#[test]
fn a_refused_login_blames_the_password_given() {
    let kiln = Kiln::new();
    require_tool("htpasswd");
    let htpasswd = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} ci right 2>/dev/null",
        htpasswd.display()
    ));
    let registry =
        common::servers::Registry::start_with(&kiln, &["--htpasswd", htpasswd.to_str().unwrap()]);
    let docker = kiln.scratch("docker");
    let out = kiln
        .cmd()
        .env("DOCKER_CONFIG", &docker)
        .args(["login", "-u", "ci", "-p", "wrong", &registry.addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refused the user name and password given"),
        "{err}"
    );
    assert!(!err.contains("stored credentials"), "{err}");
    assert!(!docker.join("config.json").exists());
}

#[test]
fn help_describes_every_command() {
    let kiln = Kiln::new();
    let help = kiln.ok(&["--help"]);
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("dockerfile"))
        .unwrap();
    assert!(line.trim().len() > "dockerfile".len() + 5, "{help}");
    let help = kiln.ok(&["dockerfile", "--help"]);
    assert!(
        help.lines().next().unwrap().contains("Dockerfile"),
        "{help}"
    );
}

#[test]
fn prune_names_images_by_the_id_images_shows() {
    let kiln = seeded();
    let input = kiln.file("other.tar", &rich_rootfs());
    kiln.ok(&["import", "-c", "CMD [\"other\"]", &input]);
    let untagged = kiln.ok(&["images", "-q"]);
    let ids: Vec<&str> = untagged.lines().collect();
    let out = kiln.ok(&["prune"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Removed untagged image"))
        .unwrap();
    let named = line.rsplit("sha256:").next().unwrap();
    assert!(
        ids.iter().any(|id| named.starts_with(id)),
        "{line} is none of {ids:?}"
    );
}

#[test]
fn gc_of_a_missing_storage_refuses() {
    let kiln = Kiln::new();
    let missing = kiln.scratch("no-such-registry");
    let err = kiln.fails(&["registry", "gc", "--storage", missing.to_str().unwrap()]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists(), "gc created {}", missing.display());
}

#[test]
fn a_failed_copy_to_an_oci_dir_leaves_nothing() {
    let kiln = seeded();
    let port = free_port();
    let dest = kiln.scratch("out/layout");
    let source = format!("docker://127.0.0.1:{port}/x:1");
    let err = kiln.fails(&["copy", &source, &format!("oci:{}", dest.display())]);
    assert!(err.contains("connection refused"), "{err}");
    assert!(!dest.exists(), "{} was left behind", dest.display());
    assert!(
        fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .next()
            .is_none(),
        "staging left behind"
    );
    // An existing directory keeps what it had, and gets nothing of a layout.
    let existing = kiln.scratch("mine");
    fs::create_dir_all(&existing).unwrap();
    fs::write(existing.join("notes"), "mine").unwrap();
    kiln.fails(&["copy", &source, &format!("oci:{}", existing.display())]);
    let left: Vec<_> = fs::read_dir(&existing)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes"]);
}

#[test]
fn the_quickstart_says_what_it_printed_and_how_to_go_on() {
    require_tool("busybox");
    let kiln = Kiln::new();
    let out_dir = kiln.scratch("quickstart");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/quickstart.sh");
    let out = Command::new(script)
        .env("QUICKSTART_KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("QUICKSTART_OUT", &out_dir)
        .env("KILN_ROOT", kiln.root())
        .env("QUICKSTART_PORT", free_port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The app was built, ran, was served and pulled back.
    for line in [
        "hello, world, from kiln 1.0 (running as nobody)",
        "hello, kiln-user, from kiln 1.0 (running as nobody)",
        "served: {\"name\":\"demo/hello\",\"tags\":[\"1\"]}",
        "hello, registry, from kiln 1.0 (running as nobody)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in:\n{stdout}"
        );
    }
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("imported busybox:latest, image ID sha256:"),
        "{stdout}"
    );
    // The last line's load command works as printed, from anywhere.
    let last = stdout.lines().last().unwrap();
    let command = last
        .split_once("load it with '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(command, _)| command)
        .unwrap_or_else(|| panic!("no load command in {last:?}"));
    let fresh = Kiln::new();
    let loaded = Command::new("sh")
        .args(["-c", command])
        .current_dir("/")
        .env("KILN_ROOT", fresh.root())
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert_eq!(fresh.image_id("busybox"), kiln.image_id("busybox"));
}
