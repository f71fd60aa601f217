//! The build fixtures built by docker's BuildKit (the test's own dockerd, vfs, the busybox
//! base loaded from `kiln save`) give the tree and config fields kiln's build gives (the
//! checked-in expectations); and a kiln-built image, saved and loaded into docker, runs
//! there as it runs under `kiln run`.

mod common;

use std::{fs, process::Command};

use common::{builds, docker::Dockerd, with_busybox_as};
use serde_json::Value;

/// Debian's 20.10 client: a newer client on PATH wants buildx for BuildKit builds.
fn docker(d: &Dockerd) -> Command {
    let mut c = Command::new("/usr/bin/docker");
    c.arg("-H")
        .arg(format!("unix://{}", d.dir().join("docker.sock").display()))
        .env("DOCKER_CONFIG", d.dir().join("client"))
        .env("DOCKER_BUILDKIT", "1");
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A container's file system, flattened (`docker export`).
fn export(d: &Dockerd, image: &str) -> Vec<u8> {
    let mut create = docker(d);
    create.args(["create", image, "true"]);
    let id = ok(create).trim().to_string();
    let out = d.scratch(&format!("{id}.tar"));
    let mut export = docker(d);
    export.args(["export", "-o", out.to_str().unwrap(), &id]);
    ok(export);
    let mut rm = docker(d);
    rm.args(["rm", &id]);
    ok(rm);
    fs::read(out).unwrap()
}

/// Fixtures docker 20.10's builder cannot build as written, and why.
const DOCKER_CANNOT: &[(&str, &str)] = &[
    (
        "heredoc-run",
        "the dockerfile frontend built into docker 20.10 predates heredocs (1.4), and no \
         `# syntax=` image can be pulled here",
    ),
    (
        "network-none",
        "the same frontend predates `RUN --network` (1.3)",
    ),
    (
        "copy-link",
        "the same frontend predates `COPY --link` (1.4)",
    ),
    ("copy-heredoc", "heredocs again (1.4)"),
    (
        "add-zstd",
        "docker 20.10's BuildKit copies a zstd archive as a file; newer BuildKit extracts \
         it, as kiln does",
    ),
];

#[test]
fn docker_builds_the_fixtures_to_the_same_trees_and_configs() {
    let kiln = with_busybox_as("busybox");
    let d = Dockerd::start();
    let archive = kiln.scratch("busybox.tar");
    kiln.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    let mut load = docker(&d);
    load.args(["load", "-i", archive.to_str().unwrap()]);
    ok(load);
    let base = export(&d, "busybox");
    let mut mismatches = Vec::new();
    for fixture in builds::fixtures() {
        if fixture.expect_error.is_some()
            || DOCKER_CANNOT.iter().any(|(name, _)| *name == fixture.name)
        {
            continue;
        }
        let tag = format!("fx-{}", fixture.name);
        let mut build = docker(&d);
        build
            .args(["build", "--network", "none", "-t", &tag])
            .args(&fixture.args)
            .arg(&fixture.dir);
        let out = build.output().unwrap();
        if !out.status.success() {
            mismatches.push(format!(
                "{}: docker build failed:\n{}",
                fixture.name,
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let inspect: Value = serde_json::from_str(&ok({
            let mut c = docker(&d);
            c.args(["image", "inspect", &tag]);
            c
        }))
        .unwrap();
        let text = format!(
            "# config\n{}# tree (changes from the base)\n{}",
            builds::config_fields(&inspect[0]["Config"]),
            builds::tree_changes(
                (!fixture.from_scratch).then_some(&base[..]),
                &export(&d, &tag)
            )
        );
        // `docker create` makes /etc in an image without one, for its hosts files.
        let text = if fixture.from_scratch {
            text.lines()
                .filter(|l| !l.starts_with("+ /etc Directory "))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            text
        };
        let expected = fs::read_to_string(fixture.expected_path()).unwrap();
        if text != expected {
            mismatches.push(format!(
                "{}:\n--- kiln\n{expected}--- docker\n{text}",
                fixture.name
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // A kiln-built image, saved and loaded into docker, runs there as under `kiln run`.
    for format in ["oci", "docker"] {
        let fixture = builds::fixtures()
            .into_iter()
            .find(|f| f.name == "run-basic")
            .unwrap();
        let tag = format!("kiln-built-{format}:1");
        kiln.ok(&[
            "build",
            "-q",
            "--format",
            format,
            "-t",
            &tag,
            fixture.dir.to_str().unwrap(),
        ]);
        let ours = kiln.ok(&["run", "--rm", "--network", "none", &tag]);
        let archive = kiln.scratch(&format!("{format}.tar"));
        kiln.ok(&["save", "-o", archive.to_str().unwrap(), &tag]);
        let mut load = docker(&d);
        load.args(["load", "-i", archive.to_str().unwrap()]);
        ok(load);
        let mut run = docker(&d);
        run.args(["run", "--rm", "--network", "none", &tag]);
        assert_eq!(ok(run), ours, "{format}");
        assert_eq!(ours, "hello world\n");
    }
}
