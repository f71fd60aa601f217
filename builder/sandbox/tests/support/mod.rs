//! Helpers for the real-namespace tests: a busybox root per test, specs, the
//! `kiln-sandbox` driver (a parent process the tests can signal), and scans of the host's
//! processes and mounts for leftovers.

#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use kiln_sandbox::{Spec, User};

pub const DRIVER: &str = env!("CARGO_BIN_EXE_kiln-sandbox");

/// These tests need namespaces and mounts: CI runs them as root. Fail loudly rather than
/// skip, so a green run means they ran.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the sandbox tests need root (CI runs them as root)"
    );
}

/// The fixture busybox rootfs tarball, made once per test binary run.
fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // Made under a name of our own, then renamed: test binaries run side by side.
        let out = dir.join("busybox-rootfs.tar");
        let tmp = dir.join(format!("busybox-rootfs.tar.{}", std::process::id()));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/make-busybox-rootfs.sh"
        );
        let status = Command::new(script).arg(&tmp).status().unwrap();
        assert!(
            status.success(),
            "the busybox fixture script failed (apt-get install busybox-static)"
        );
        fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// A fresh busybox root in a temporary directory (`dir/rootfs`), with room beside it.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        let status = Command::new("tar")
            .arg("-x")
            .arg("-f")
            .arg(busybox_tar())
            .arg("-C")
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "extracting the busybox rootfs failed");
        Root { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// A spec running `script` with `sh -c` in this root.
    pub fn spec(&self, script: &str) -> Spec {
        let mut spec = Spec::new(self.path(), vec!["sh".into(), "-c".into(), script.into()]);
        spec.hostname = "sandbox-test".into();
        spec
    }
}

/// What the driver printed and how it ended.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    /// The outcome the driver wrote: `{"code": N, "created": [...]}` (absent on error).
    pub outcome: Option<serde_json::Value>,
}

/// Runs `spec` through the driver (a separate parent process, whose stdio the sandbox
/// inherits), capturing its output.
pub fn run(spec: &Spec) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let outcome_path = dir.path().join("outcome.json");
    fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let out: Output = Command::new(DRIVER)
        .arg(&spec_path)
        .arg(&outcome_path)
        .env("KILN_TEST_HOST_ONLY", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
        outcome: fs::read(&outcome_path)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap()),
    }
}

/// Runs and requires exit code 0; returns stdout.
pub fn ok(spec: &Spec) -> String {
    let ran = run(spec);
    assert_eq!(
        ran.code,
        Some(0),
        "sandbox failed:\n{}{}",
        ran.stdout,
        ran.stderr
    );
    ran.stdout
}

pub fn user(uid: u32, gid: u32) -> User {
    User {
        uid,
        gid,
        groups: Vec::new(),
        home: None,
    }
}

/// A marker unique to one test, put in the command's environment to find its processes.
pub fn marker(name: &str) -> String {
    format!("KILN_SANDBOX_TEST={name}-{}", std::process::id())
}

/// Host pids whose environment holds `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A process may exit while we look; an unreadable one is not ours.
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// Polls `check` every 50 ms for up to 20 s (a generous bound for noisy machines).
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

/// Lines of the host's mount table that mention `path`.
pub fn host_mounts_under(path: &Path) -> Vec<String> {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = path.to_str().unwrap();
    table
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}
