//! Two kiln processes sharing one store: loads run at once and both land whole.

mod common;

use std::{fs, process::Stdio};

use common::{Kiln, busybox_rootfs, rich_rootfs};

#[test]
fn two_loads_of_different_archives_at_once() {
    // Make two archives in a scratch store.
    let maker = Kiln::new();
    let a = maker.scratch("a-rootfs.tar");
    fs::write(&a, rich_rootfs()).unwrap();
    let b = busybox_rootfs(maker.dir.path());
    maker.ok(&["import", a.to_str().unwrap(), "one:1"]);
    maker.ok(&["import", b.to_str().unwrap(), "two:1"]);
    let (one, two) = (maker.scratch("one.tar"), maker.scratch("two.tar"));
    maker.ok(&["save", "-o", one.to_str().unwrap(), "one:1"]);
    maker.ok(&["save", "-o", two.to_str().unwrap(), "two:1"]);

    for round in 0..5 {
        let kiln = Kiln::new();
        let spawn = |archive: &std::path::Path| {
            kiln.cmd()
                .args(["load", "-i", archive.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (p1, p2) = (spawn(&one), spawn(&two));
        for p in [p1, p2] {
            let out = p.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let images = kiln.ok(&["images"]);
        assert!(
            images.contains("one") && images.contains("two"),
            "round {round}:\n{images}"
        );
        assert_eq!(kiln.image_id("one:1"), maker.image_id("one:1"));
        assert_eq!(kiln.image_id("two:1"), maker.image_id("two:1"));
        assert!(
            kiln.snapshot().staging.is_empty(),
            "staging files left behind"
        );
    }
}

#[test]
fn prune_waits_for_a_running_load() {
    // A load holds the store's shared lock; prune needs it exclusively, so it cannot delete
    // blobs that the load has staged but not yet tagged. Run them together many times: the
    // loaded image must always be whole afterwards.
    let maker = Kiln::new();
    let a = maker.scratch("a.tar");
    fs::write(&a, rich_rootfs()).unwrap();
    maker.ok(&["import", a.to_str().unwrap(), "one:1"]);
    let one = maker.scratch("one.tar");
    maker.ok(&["save", "-o", one.to_str().unwrap(), "one:1"]);
    for _ in 0..10 {
        let kiln = Kiln::new();
        kiln.ok(&["images"]);
        let load = kiln
            .cmd()
            .args(["load", "-q", "-i", one.to_str().unwrap()])
            .spawn()
            .unwrap();
        let prune = kiln.cmd().args(["prune"]).output().unwrap();
        assert!(prune.status.success());
        assert!(load.wait_with_output().unwrap().status.success());
        let out = kiln.scratch("check.tar");
        kiln.ok(&["export", "one:1", "-o", out.to_str().unwrap()]);
    }
}
