//! The `kiln` binary is its own sandbox helper: `kiln __sandbox-init` is dispatched before
//! clap (hidden from --help), and the library runs a command through it. The sandbox's
//! own behaviour is tested in builder/sandbox/tests.

mod common;

use std::{fs, os::unix::fs::MetadataExt, path::Path, process::Command};

use common::{Kiln, busybox_rootfs};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

#[test]
fn kiln_is_the_sandbox_helper() {
    // /proc/self belongs to our effective uid.
    let euid = fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(euid, 0, "the sandbox needs root (CI runs as root)");
    let dir = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs(dir.path());
    let root = dir.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    let spec = kiln_sandbox::Spec::new(
        &root,
        vec![
            "sh".into(),
            "-c".into(),
            "hostname > /out; grep CapEff /proc/self/status >> /out; exit 3".into(),
        ],
    );
    let outcome = kiln_sandbox::run(&spec, Path::new(KILN)).unwrap();
    assert_eq!(outcome.status, kiln_sandbox::Status::Exited(3));
    assert_eq!(
        fs::read_to_string(root.join("out")).unwrap(),
        "kiln\nCapEff:\t00000000a80425fb\n"
    );
}

#[test]
fn the_helper_entry_is_hidden_and_refuses_to_run_by_hand() {
    let kiln = Kiln::new();
    let help = kiln.ok(&["--help"]);
    assert!(!help.contains("sandbox"), "{help}");
    let out = kiln.run(&[kiln_sandbox::INIT_ARG]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("internal to kiln"), "{stderr}");
}
