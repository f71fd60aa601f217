//! `kiln dockerfile parse` end to end: the syntax tree as JSON, and errors that point at
//! the spot.

mod common;

use std::{io::Write, process::Stdio};

use common::Kiln;

#[test]
fn parse_prints_the_tree_and_points_at_errors() {
    let kiln = Kiln::new();
    let file = kiln.file(
        "Dockerfile",
        b"# syntax=docker/dockerfile:1\nFROM golang:1.22 AS build\nRUN --mount=type=cache,target=/root/.cache <<EOF\ngo build ./...\nEOF\nONBUILD COPY . /src\n",
    );
    let out = kiln.ok(&["dockerfile", "parse", "--json", &file]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["directives"][0]["value"], "docker/dockerfile:1");
    let run = &v["instructions"][1];
    assert_eq!(run["instruction"], "RUN");
    assert_eq!(run["line"], 3);
    assert_eq!(run["flags"][0]["name"], "mount");
    assert_eq!(run["heredocs"][0]["content"], "go build ./...\n");
    assert_eq!(v["instructions"][2]["trigger"]["instruction"], "COPY");

    let text = kiln.ok(&["dockerfile", "parse", &file]);
    assert!(text.contains("   2  FROM golang:1.22 AS build"), "{text}");

    let mut child = kiln
        .cmd()
        .args(["dockerfile", "parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM a\nCOPY --chmod 755 x /y\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("-:2:6: --chmod needs a value"), "{err}");
    assert!(
        err.contains("2 | COPY --chmod 755 x /y\n  |      ^"),
        "{err}"
    );
}

#[test]
fn build_print_outline_shows_the_plan_and_the_context() {
    let kiln = Kiln::new();
    let ctx = kiln.scratch("ctx");
    std::fs::create_dir_all(ctx.join("docs")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG GO=1.22\nFROM golang:$GO AS build\nARG VERSION=dev\nRUN go build -X=$VERSION\nFROM build AS test\nRUN go test\nFROM scratch AS runtime\nCOPY --from=build /app /app\n",
    )
    .unwrap();
    std::fs::write(ctx.join("main.go"), "package main\n").unwrap();
    std::fs::write(ctx.join("docs/a.md"), "a").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "docs\n").unwrap();
    let c = ctx.to_str().unwrap();
    let out = kiln
        .cmd()
        .args([
            "build",
            "--print=outline",
            "--build-arg",
            "VERSION=1.0",
            "--build-arg",
            "UNUSED=x",
            c,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("TARGET  runtime (stage 2)"), "{text}");
    assert!(text.contains("build (stage 0)  FROM golang:1.22"), "{text}");
    assert!(
        text.contains("ARG VERSION=\"1.0\"  (--build-arg)"),
        "{text}"
    );
    assert!(
        !text.contains("test (stage 1)"),
        "an unneeded stage was shown: {text}"
    );
    assert!(text.contains(": 3 files,"), "{text}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("build-arg UNUSED not consumed"), "{err}");

    let text = kiln.ok(&["build", "--print=outline", "--target", "test", c]);
    assert!(text.contains("TARGET  test (stage 1)"), "{text}");
    assert!(!text.contains("runtime"), "{text}");

    let err = kiln.fails(&["build", "--print=outline", "--target", "nope", c]);
    assert!(
        err.contains("target stage \"nope\" could not be found"),
        "{err}"
    );
}

#[test]
fn build_print_outline_json_carries_what_the_text_outline_shows() {
    let kiln = Kiln::new();
    let ctx = kiln.scratch("ctx");
    std::fs::create_dir_all(ctx.join("docs")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG GO=1.22\nARG REG\nFROM golang:$GO AS build\nARG VERSION=dev\nRUN go build -X=$VERSION\nFROM build AS test\nRUN go test\nFROM scratch AS runtime\nCOPY --from=build /app /app\n",
    )
    .unwrap();
    std::fs::write(ctx.join("main.go"), "package main\n").unwrap();
    std::fs::write(ctx.join("docs/a.md"), "a").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "docs\n").unwrap();
    let c = ctx.to_str().unwrap();
    let out = kiln.ok(&[
        "build",
        "--print=outline-json",
        "--build-arg",
        "VERSION=1.0",
        "--build-arg",
        "GO=1.23",
        c,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["target"], 2, "{v:#}");
    assert_eq!(v["target_name"], "runtime");
    // Global ARGs and where their values came from.
    let globals = v["global_args"].as_array().unwrap();
    let go = globals.iter().find(|a| a["name"] == "GO").unwrap();
    assert_eq!(
        (&go["value"], &go["source"]),
        (&"1.23".into(), &"--build-arg".into())
    );
    let reg = globals.iter().find(|a| a["name"] == "REG").unwrap();
    assert_eq!(
        (&reg["value"], &reg["source"]),
        (&().into(), &"unset".into())
    );
    // The needed stages, with the expanded FROM image and the links between them.
    let stages = v["stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["build", "runtime"]);
    assert_eq!(stages[0]["base"]["image"], "golang:1.23");
    assert_eq!(stages[0]["args"][0]["value"], "1.0");
    assert_eq!(stages[0]["args"][0]["source"], "--build-arg");
    assert_eq!(stages[1]["base"]["kind"], "scratch");
    assert_eq!(stages[1]["needs"], serde_json::json!([0]));
    assert_eq!(stages[1]["steps"][0]["instruction"], "COPY");
    // The context after .dockerignore: Dockerfile, .dockerignore and main.go.
    let context = &v["context"];
    assert_eq!(context["path"], c);
    assert_eq!(context["files"], 3);
    assert!(
        context["dockerignore"]
            .as_str()
            .unwrap()
            .ends_with(".dockerignore"),
        "{context}"
    );
    let text = kiln.ok(&["build", "--print=outline", c]);
    let bytes = context["bytes"].as_u64().unwrap();
    assert!(bytes > 0);
    assert!(text.contains(": 3 files,"), "{text}");
}

#[test]
fn outline_runs_the_onbuild_triggers_of_a_base_image_in_the_store() {
    use sha2::{Digest as _, Sha256};
    let kiln = Kiln::new();
    // An image whose config carries ONBUILD triggers, as `docker build` records them.
    let layout = kiln.scratch("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"OnBuild": ["COPY . /app/src", "RUN make -C /app/src"]},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": []
    });
    let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    kiln.ok(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        "kiln:builder-base:1",
    ]);

    let ctx = kiln.scratch("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM builder-base:1\nRUN ls /app\n").unwrap();
    let text = kiln.ok(&["build", "--print=outline", ctx.to_str().unwrap()]);
    let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("     ")).collect();
    assert_eq!(
        steps,
        vec![
            "     1  COPY . /app/src (ONBUILD)",
            "     1  RUN make -C /app/src (ONBUILD)",
            "     2  RUN ls /app"
        ],
        "{text}"
    );
}
