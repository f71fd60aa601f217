//! `kiln build` end to end, as root, on the busybox base: every fixture under
//! fixtures/builds builds to its checked-in expectation (config fields, and the tree's
//! changes from the base), a second build is all CACHED with the same manifest digest, and
//! failing fixtures fail with their message and leave no tag.

mod common;

use std::fs;

use common::{Kiln, builds, with_busybox_as};
use serde_json::Value;

fn export(kiln: &Kiln, image: &str) -> Vec<u8> {
    let out = kiln.scratch(&format!("{}.tar", image.replace([':', '/'], "_")));
    kiln.ok(&["export", image, "-o", out.to_str().unwrap()]);
    fs::read(out).unwrap()
}

fn inspect(kiln: &Kiln, image: &str) -> Value {
    let v: Value = serde_json::from_str(&kiln.ok(&["inspect", image])).unwrap();
    v[0].clone()
}

/// `kiln build` with plain progress; (success, stderr).
fn build(kiln: &Kiln, tag: &str, fixture: &builds::Fixture, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["build", "--progress", "plain", "-t", tag];
    args.extend(fixture.args.iter().map(String::as_str));
    args.extend(extra);
    args.push(fixture.dir.to_str().unwrap());
    let out = kiln.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "kiln panicked:\n{stderr}");
    (out.status.success(), stderr)
}

fn steps(stderr: &str, status: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(status))
        .count()
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

#[test]
fn fixtures_build_to_their_expectations_and_rebuild_from_cache() {
    assert!(
        is_root(),
        "build tests run as root (namespaces, overlayfs, chown)"
    );
    let kiln = with_busybox_as("busybox");
    let base = export(&kiln, "busybox");
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let mut mismatches = Vec::new();
    for fixture in builds::fixtures() {
        let tag = format!("fixture-{}:1", fixture.name);
        let (ok, stderr) = build(&kiln, &tag, &fixture, &[]);
        if let Some(lines) = &fixture.expect_error {
            assert!(!ok, "{}: the build should fail", fixture.name);
            for line in lines {
                assert!(
                    stderr.contains(line),
                    "{}: no {line:?} in:\n{stderr}",
                    fixture.name
                );
            }
            assert!(
                !kiln.run(&["inspect", &tag]).status.success(),
                "{}: a failed build left a tag",
                fixture.name
            );
            continue;
        }
        assert!(ok, "{}: build failed:\n{stderr}", fixture.name);
        let image = inspect(&kiln, &tag);
        let text = format!(
            "# config\n{}# tree (changes from the base)\n{}",
            builds::config_fields(&image["Config"]["config"]),
            builds::tree_changes(
                (!fixture.from_scratch).then_some(&base[..]),
                &export(&kiln, &tag)
            )
        );
        let expected_path = fixture.expected_path();
        if bless {
            fs::write(&expected_path, &text).unwrap();
        } else {
            let expected = fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != text {
                mismatches.push(format!(
                    "{}:\n--- expected\n{expected}--- built\n{text}",
                    fixture.name
                ));
            }
        }

        // The same build again: every step from the cache, the same image.
        let digest = kiln.manifest_digest(&tag);
        let (ok, again) = build(&kiln, &tag, &fixture, &[]);
        assert!(ok, "{}: rebuild failed:\n{again}", fixture.name);
        assert_eq!(
            steps(&again, "DONE"),
            0,
            "{}: not all cached:\n{again}",
            fixture.name
        );
        assert!(steps(&again, "CACHED") > 0, "{}:\n{again}", fixture.name);
        assert_eq!(kiln.manifest_digest(&tag), digest, "{}", fixture.name);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
