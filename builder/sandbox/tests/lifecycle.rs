//! Nothing outlives a sandbox: after a normal end, a stop, a Ctrl-C (SIGINT to the parent,
//! or to its whole process group as a terminal sends it) and a SIGKILL of the parent, no
//! process of the container and no mount remains on the host.

mod support;

use std::{
    fs,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::Path,
    process::{Child, Command, Stdio},
};

use kiln_sandbox::Status;
use support::{Root, eventually, host_mounts_under, marker, processes_with};

/// A command that leaves two background sleeps and then waits forever itself.
const LINGER: &str = "sleep 1000 & sleep 1000 & echo started; wait";

fn start_driver(root: &Root, marker: &str, own_group: bool) -> Child {
    let mut spec = root.spec(LINGER);
    spec.env.push(marker.to_string());
    let spec_path = root.dir.path().join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut command = Command::new(support::DRIVER);
    command
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Leftovers (the bug these tests catch) must not hold the harness's pipes open.
        .stderr(Stdio::null());
    if own_group {
        command.process_group(0);
    }
    command.spawn().unwrap()
}

/// The sleeps and their shell all carry the marker.
fn wait_until_running(marker: &str) {
    eventually("the sandboxed processes run", || {
        processes_with(marker).len() >= 3
    });
}

fn assert_nothing_left(marker: &str, root: &Path) {
    eventually("no sandboxed process is left", || {
        processes_with(marker).is_empty()
    });
    assert_eq!(host_mounts_under(root), Vec::<String>::new());
}

#[test]
fn background_processes_die_with_the_command() {
    let root = Root::new();
    let mark = marker("normal-end");
    let mut spec = root.spec("sleep 1000 & sleep 1000 & echo started");
    spec.env.push(mark.clone());
    // In-process parent: the test itself calls the library (stdout goes to the harness).
    let outcome = kiln_sandbox::run(&spec, Path::new(support::DRIVER)).unwrap();
    assert_eq!(outcome.status, Status::Exited(0));
    // The command (PID 1) exited, so the kernel killed its orphans before `run` returned.
    assert_eq!(processes_with(&mark), Vec::<u32>::new());
    assert_eq!(host_mounts_under(&root.path()), Vec::<String>::new());
}

#[test]
fn a_stop_kills_the_whole_tree_and_reports_the_signal() {
    let root = Root::new();
    let mark = marker("stopper");
    let mut spec = root.spec(LINGER);
    spec.env.push(mark.clone());
    let sandbox = kiln_sandbox::spawn(&spec, Path::new(support::DRIVER)).unwrap();
    let stopper = sandbox.stopper();
    wait_until_running(&mark);
    stopper.stop().unwrap();
    let outcome = sandbox.wait().unwrap();
    assert_eq!(outcome.status, Status::Interrupted(libc::SIGTERM));
    assert_eq!(outcome.status.code(), 143);
    assert_eq!(processes_with(&mark), Vec::<u32>::new());
    // Stopping an ended sandbox is harmless.
    stopper.stop().unwrap();
    assert_nothing_left(&mark, &root.path());
}

#[test]
fn sigint_of_the_parent_kills_the_whole_tree() {
    let root = Root::new();
    let mark = marker("sigint-parent");
    let mut driver = start_driver(&root, &mark, false);
    wait_until_running(&mark);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(driver.id() as i32, libc::SIGINT) };
    let status = driver.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert_nothing_left(&mark, &root.path());
}

#[test]
fn ctrl_c_to_the_process_group_stops_the_sandbox_with_130() {
    let root = Root::new();
    let mark = marker("ctrl-c");
    let driver = start_driver(&root, &mark, true);
    wait_until_running(&mark);
    // As a terminal does: SIGINT to every process of the foreground group.
    // SAFETY: signalling the group our child leads.
    unsafe { libc::kill(-(driver.id() as i32), libc::SIGINT) };
    let mut driver = driver;
    let status = driver.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert_nothing_left(&mark, &root.path());
}

#[test]
fn sigkill_of_the_parent_kills_the_whole_tree() {
    let root = Root::new();
    let mark = marker("sigkill-parent");
    let mut driver = start_driver(&root, &mark, false);
    wait_until_running(&mark);
    driver.kill().unwrap();
    driver.wait().unwrap();
    assert_nothing_left(&mark, &root.path());
}

#[test]
fn the_parent_sees_130_when_the_helper_is_interrupted() {
    // The helper alone gets SIGINT (a parent that handles Ctrl-C itself and forwards it).
    let root = Root::new();
    let mark = marker("helper-sigint");
    let mut spec = root.spec(LINGER);
    spec.env.push(mark.clone());
    let sandbox = kiln_sandbox::spawn(&spec, Path::new(support::DRIVER)).unwrap();
    wait_until_running(&mark);
    // SAFETY: signalling our own child, the helper.
    unsafe { libc::kill(sandbox.id() as i32, libc::SIGINT) };
    let outcome = sandbox.wait().unwrap();
    assert_eq!(outcome.status, Status::Interrupted(libc::SIGINT));
    assert_eq!(outcome.status.code(), 130);
    assert_nothing_left(&mark, &root.path());
}
