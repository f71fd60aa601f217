//! The build fixtures (`fixtures/builds/<name>/`): a Dockerfile and its context, `args`
//! (extra `kiln build` arguments, one per line), `expect-error` (lines the failure must
//! print) or `expected.txt` (the image's config fields and its tree's changes from the
//! busybox base, or its whole tree when `tree-base` says `scratch`). `KILN_BLESS=1` rewrites `expected.txt` from what kiln builds.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::tree_of;

pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub expect_error: Option<Vec<String>>,
    /// The target starts from scratch: compare whole trees.
    pub from_scratch: bool,
}

impl Fixture {
    pub fn expected_path(&self) -> PathBuf {
        self.dir.join("expected.txt")
    }
}

pub fn fixtures() -> Vec<Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/builds");
    let mut out = Vec::new();
    for entry in fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("Dockerfile").is_file() {
            continue;
        }
        let lines = |name: &str| -> Option<Vec<String>> {
            fs::read_to_string(dir.join(name))
                .ok()
                .map(|t| t.lines().map(str::to_string).collect())
        };
        out.push(Fixture {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            args: lines("args").unwrap_or_default(),
            expect_error: lines("expect-error"),
            from_scratch: lines("tree-base")
                .is_some_and(|l| l.first().is_some_and(|f| f == "scratch")),
            dir,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The fields of an image config both builders set, one per line (the `config` member of
/// an OCI config, or docker inspect's `.Config`).
pub fn config_fields(config: &Value) -> String {
    const FIELDS: [&str; 12] = [
        "Cmd",
        "Entrypoint",
        "Env",
        "ExposedPorts",
        "Healthcheck",
        "Labels",
        "OnBuild",
        "Shell",
        "StopSignal",
        "User",
        "Volumes",
        "WorkingDir",
    ];
    let mut out = String::new();
    for field in FIELDS {
        let value = &config[field];
        let empty = value.is_null()
            || value.as_str() == Some("")
            || value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(|o| o.is_empty());
        if !empty {
            out.push_str(&format!("{field}: {value}\n"));
        }
    }
    out
}

/// Paths that a container runtime adds to an exported container and a build does not.
pub const RUNTIME_PATHS: &[&str] = &[
    ".dockerenv",
    "dev",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
];

fn runtime_path(path: &str) -> bool {
    RUNTIME_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// A flattened tree with hard links resolved: each name of a linked file shows the file
/// (which name an archive stores first is the writer's choice) and says it is linked.
fn resolved(tar: &[u8]) -> BTreeMap<String, String> {
    // docker export writes the file type bits into the mode too: compare permissions.
    let tree: BTreeMap<String, String> = tree_of(tar)
        .into_iter()
        .map(|(path, value)| (path, permissions_only(&value)))
        .collect();
    let mut out = BTreeMap::new();
    let mut linked = Vec::new();
    for (path, value) in &tree {
        if value.starts_with("Link ") {
            let target = value
                .split(" link=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or_default()
                .to_string();
            linked.push((path.clone(), target));
        } else {
            out.insert(path.clone(), value.clone());
        }
    }
    for (path, target) in linked {
        let file = tree.get(&target).cloned().unwrap_or_default();
        out.insert(path, format!("{file} hardlinked"));
        if let Some(t) = out.get_mut(&target)
            && !t.ends_with(" hardlinked")
        {
            t.push_str(" hardlinked");
        }
    }
    out.retain(|path, _| !runtime_path(path));
    out
}

fn permissions_only(value: &str) -> String {
    value
        .split(' ')
        .map(|field| match field.strip_prefix("mode=") {
            Some(octal) => {
                let mode = u32::from_str_radix(octal, 8).unwrap_or(0) & 0o7777;
                format!("mode={mode:o}")
            }
            None => field.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `image_tar` (a flattened export) changes from `base_tar`: `+ path value` for
/// entries that are new or differ, `- path` for entries gone.
pub fn tree_changes(base_tar: Option<&[u8]>, image_tar: &[u8]) -> String {
    let base = base_tar.map(resolved).unwrap_or_default();
    let image = resolved(image_tar);
    let mut out = String::new();
    for (path, value) in &image {
        if base.get(path) != Some(value) {
            out.push_str(&format!("+ /{path} {value}\n"));
        }
    }
    for path in base.keys() {
        if !image.contains_key(path) {
            out.push_str(&format!("- /{path}\n"));
        }
    }
    out
}
