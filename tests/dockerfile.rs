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
