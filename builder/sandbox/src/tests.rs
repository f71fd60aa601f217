//! The setup's calls, recorded: order and arguments of unshare, mounts, pivot and the
//! identity switch, checked without root.

use std::path::{Path, PathBuf};

use libc::{MNT_DETACH, MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT};

use crate::{
    container,
    spec::{Network, Spec, User},
    syscall::{Call, Kind, Recording},
};

fn spec() -> Spec {
    let mut spec = Spec::new(
        "/var/lib/kiln/run/1/rootfs",
        vec!["sh".into(), "-c".into(), "true".into()],
    );
    spec.hostname = "box".into();
    spec.hosts = "127.0.0.1 localhost box\n".into();
    spec.resolv_conf = "nameserver 192.0.2.1\n".into();
    spec
}

/// A root that has everything the setup looks at, like a Debian image.
fn full_root() -> Recording {
    Recording::new()
        .with("/proc", Kind::Dir)
        .with("/dev", Kind::Dir)
        .with("/etc", Kind::Dir)
        .with("/etc/hosts", Kind::File)
        .with("/etc/resolv.conf", Kind::File)
        .with("/bin/sh", Kind::File)
        .with("/proc/sys", Kind::Dir)
        .with("/proc/kcore", Kind::File)
        .with("/proc/acpi", Kind::Dir)
}

fn mounts(calls: &[Call]) -> Vec<(String, u64)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount { target, flags, .. } => Some((target.display().to_string(), *flags)),
            Call::Umount2(target, _) => Some((format!("umount {}", target.display()), 0)),
            Call::PivotRoot(..) => Some(("pivot".into(), 0)),
            _ => None,
        })
        .collect()
}

fn position(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(pred).expect("call not made")
}

#[test]
fn namespaces_follow_the_network_choice() {
    let sys = Recording::new();
    let mut spec = spec();
    container::enter_namespaces(&sys, &spec).unwrap();
    spec.network = Network::None;
    container::enter_namespaces(&sys, &spec).unwrap();
    let base = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    assert_eq!(
        sys.calls(),
        vec![
            Call::Unshare(base),
            Call::Unshare(base | libc::CLONE_NEWNET)
        ]
    );
}

#[test]
fn mounts_go_private_then_pivot_then_build_then_detach_the_old_root() {
    let sys = full_root();
    let created = container::prepare(&sys, &spec()).unwrap();
    assert!(created.is_empty(), "nothing to create: {created:?}");
    let calls = sys.calls();
    let m = mounts(&calls);
    let root = "/var/lib/kiln/run/1/rootfs";
    assert_eq!(m[0], ("/".into(), MS_REC | MS_PRIVATE));
    assert_eq!(m[1], (root.into(), MS_BIND | MS_REC));
    assert_eq!(m[2], ("pivot".into(), 0));
    assert_eq!(m[3].0, "/proc");
    assert_eq!(m.last().unwrap().0, "umount .");
    // pivot_root(".", ".") from inside the root.
    let pivot = position(&calls, |c| matches!(c, Call::PivotRoot(..)));
    assert_eq!(calls[pivot - 1], Call::Chdir(root.into()));
    assert_eq!(calls[pivot], Call::PivotRoot(".".into(), ".".into()));
    assert!(calls.contains(&Call::Umount2(".".into(), MNT_DETACH)));
    // The parent-death signal is armed before anything else.
    assert_eq!(calls[0], Call::ParentDeathSignal(libc::SIGKILL));
}

#[test]
fn etc_files_are_bound_from_a_scratch_tmpfs_that_is_dropped_before_dev() {
    let sys = full_root();
    container::prepare(&sys, &spec()).unwrap();
    let calls = sys.calls();
    let write_hosts = position(
        &calls,
        |c| matches!(c, Call::WriteFile(p, text, _) if p == Path::new("/dev/hosts") && text.contains("box")),
    );
    let bind_hosts = position(&calls, |c| {
        matches!(c, Call::Mount { source: Some(s), target, flags, .. }
            if s == Path::new("/dev/hosts") && target == Path::new("/etc/hosts") && *flags == MS_BIND)
    });
    let bind_resolv = position(
        &calls,
        |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/etc/resolv.conf")),
    );
    let drop_scratch = position(&calls, |c| *c == Call::Umount2("/dev".into(), MNT_DETACH));
    let real_dev = position(
        &calls,
        |c| matches!(c, Call::Mount { target, data: Some(d), .. } if target == Path::new("/dev") && d.contains("65536k")),
    );
    assert!(write_hosts < bind_hosts && bind_hosts < drop_scratch);
    assert!(bind_resolv < drop_scratch && drop_scratch < real_dev);
    assert!(calls.contains(&Call::WriteFile(
        "/dev/resolv.conf".into(),
        "nameserver 192.0.2.1\n".into(),
        0o644
    )));
}

#[test]
fn dev_has_dockers_devices_and_links() {
    let sys = full_root();
    container::prepare(&sys, &spec()).unwrap();
    let calls = sys.calls();
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = PathBuf::from("/dev").join(name);
        assert!(calls.contains(&Call::Mknod(
            path.clone(),
            libc::S_IFCHR | 0o666,
            major,
            minor
        )));
        assert!(calls.contains(&Call::Chmod(path, 0o666)));
    }
    assert!(calls.iter().any(|c| matches!(c,
        Call::Mount { target, fstype: Some(t), data: Some(d), .. }
            if target == Path::new("/dev/pts") && t == "devpts" && d.contains("newinstance"))));
    assert!(calls.contains(&Call::Symlink("pts/ptmx".into(), "/dev/ptmx".into())));
    assert!(calls.contains(&Call::Symlink("/proc/self/fd".into(), "/dev/fd".into())));
    assert!(calls.contains(&Call::Symlink(
        "/proc/self/fd/2".into(),
        "/dev/stderr".into()
    )));
    assert!(calls.iter().any(|c| matches!(c,
        Call::Mount { target, data: Some(d), .. } if target == Path::new("/dev/shm") && d.contains("1777"))));
}

#[test]
fn proc_is_masked_and_read_only_where_docker_does_it() {
    let sys = full_root();
    container::prepare(&sys, &spec()).unwrap();
    let m = mounts(&sys.calls());
    assert!(
        m.contains(&("/proc/kcore".into(), MS_BIND)),
        "a file gets /dev/null"
    );
    assert!(
        m.contains(&("/proc/acpi".into(), MS_RDONLY)),
        "a directory gets an empty tmpfs"
    );
    let ro = MS_BIND | MS_REMOUNT | MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    assert!(m.contains(&("/proc/sys".into(), ro)));
    // Paths this kernel lacks are skipped, not errors.
    assert!(!m.iter().any(|(t, _)| t == "/proc/timer_stats"));
}

#[test]
fn missing_mount_points_are_created_and_reported_in_order() {
    // A busybox root: no /proc, /dev or /etc/hosts.
    let sys = Recording::new()
        .with("/etc", Kind::Dir)
        .with("/bin/sh", Kind::File);
    let created = container::prepare(&sys, &spec()).unwrap();
    let paths: Vec<_> = created.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(paths, ["/proc", "/dev", "/etc/hosts", "/etc/resolv.conf"]);
    let sys = Recording::new();
    let created = container::prepare(&sys, &spec()).unwrap();
    assert_eq!(created[2], PathBuf::from("/etc"), "/etc before its files");
    // The empty mount point is a file in the root, not the contents.
    assert!(
        sys.calls()
            .contains(&Call::WriteFile("/etc/hosts".into(), String::new(), 0o644))
    );
}

#[test]
fn hostname_loopback_and_workdir() {
    let sys = full_root().with("/app", Kind::Dir);
    let mut spec = spec();
    spec.network = Network::None;
    spec.cwd = "/app/src/../build/out".into();
    spec.user = User {
        uid: 1000,
        gid: 1001,
        groups: vec![],
        home: None,
    };
    container::prepare(&sys, &spec).unwrap();
    let calls = sys.calls();
    assert!(calls.contains(&Call::Sethostname("box".into())));
    assert!(calls.contains(&Call::LoopbackUp));
    // Missing components are created for the user; existing ones are left alone.
    assert!(!calls.contains(&Call::Mkdir("/app".into(), 0o755)));
    assert!(
        !calls.contains(&Call::Mkdir("/app/src".into(), 0o755)),
        "cleaned first"
    );
    assert!(calls.contains(&Call::Mkdir("/app/build".into(), 0o755)));
    assert!(calls.contains(&Call::Chown("/app/build/out".into(), 1000, 1001)));
    assert_eq!(calls.last().unwrap(), &Call::Chdir("/app/build/out".into()));
    // The host network gets no loopback call.
    let sys = full_root();
    container::prepare(&sys, &self::spec()).unwrap();
    assert!(!sys.calls().contains(&Call::LoopbackUp));
}

#[test]
fn identity_then_caps_then_no_new_privs_then_seccomp_then_exec() {
    let sys = full_root();
    let mut spec = spec();
    spec.user = User {
        uid: 1000,
        gid: 1001,
        groups: vec![10, 50],
        home: Some("/home/app".into()),
    };
    spec.env = vec!["FOO=bar".into()];
    let filter = crate::seccomp::default_filter().unwrap();
    let err = container::exec(&sys, &spec, &filter);
    assert_eq!(err.source.to_string(), "recorded execve");
    let calls = sys.calls();
    let env = vec![
        "FOO=bar".to_string(),
        format!("PATH={}", crate::DEFAULT_PATH),
        "HOME=/home/app".into(),
    ];
    assert_eq!(
        calls,
        vec![
            Call::CloseFdsOnExec(3),
            Call::BoundingSet(0xa804_25fb),
            Call::ClearAmbient,
            Call::Setgroups(vec![10, 50]),
            Call::Setresgid(1001),
            Call::Setresuid(1000),
            Call::Capset {
                effective: 0,
                permitted: 0,
                inheritable: 0
            },
            Call::ParentDeathSignal(libc::SIGKILL),
            Call::NoNewPrivs,
            Call::Seccomp(filter.len()),
            Call::Execve("/bin/sh".into(), spec.argv.clone(), env),
        ]
    );
}

#[test]
fn root_keeps_dockers_default_capabilities() {
    let sys = full_root();
    let filter = crate::seccomp::default_filter().unwrap();
    container::exec(&sys, &spec(), &filter);
    assert!(sys.calls().contains(&Call::Capset {
        effective: 0xa804_25fb,
        permitted: 0xa804_25fb,
        inheritable: 0
    }));
}

#[test]
fn a_command_not_in_path_is_docker_s_error_and_nothing_is_executed() {
    let sys = Recording::new();
    let mut spec = spec();
    spec.argv = vec!["nosuch".into()];
    let err = container::exec(&sys, &spec, &crate::seccomp::default_filter().unwrap());
    assert_eq!(
        err.to_string(),
        "exec: \"nosuch\": executable file not found in $PATH"
    );
    assert!(sys.calls().is_empty(), "{:?}", sys.calls());
}

#[test]
fn a_failing_step_is_named() {
    let sys = full_root().failing("PivotRoot");
    let err = container::prepare(&sys, &spec()).unwrap_err();
    assert!(err.to_string().starts_with("pivot_root: "), "{err}");
    assert!(matches!(sys.calls().last(), Some(Call::PivotRoot(..))));
}

#[test]
fn spec_validation() {
    let dir = tempfile::tempdir().unwrap();
    let valid = || {
        let mut s = spec();
        s.root = dir.path().to_path_buf();
        s
    };
    assert!(valid().validate().is_ok());
    let mut s = valid();
    s.argv.clear();
    assert!(s.validate().is_err());
    let mut s = valid();
    s.cwd = "relative".into();
    assert!(s.validate().is_err());
    let mut s = valid();
    s.env.push("NOEQUALS".into());
    assert!(s.validate().unwrap_err().contains("NOEQUALS"));
    let mut s = valid();
    s.root = dir.path().join("../../../../../../..");
    assert_eq!(
        s.validate().unwrap_err(),
        "the root may not be the host's /"
    );
}
