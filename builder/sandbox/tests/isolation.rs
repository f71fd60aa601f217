//! What a process sees inside the sandbox: its own processes only, its root only, no
//! mounts, Docker's default capabilities, the hostname, env, cwd, user, network and /etc
//! files it was given. Real namespaces: CI runs these as root, on the busybox fixture.

mod support;

use std::{fs, path::Path};

use kiln_sandbox::{Network, resolve_user};
use support::{Root, ok, run, user};

#[test]
fn output_and_exit_code_pass_through() {
    let root = Root::new();
    let ran = run(&root.spec("echo hello; echo oops >&2; exit 3"));
    assert_eq!(ran.stdout, "hello\n");
    assert_eq!(ran.stderr, "oops\n");
    assert_eq!(ran.code, Some(3));
    let outcome = ran.outcome.expect("an outcome");
    assert_eq!(outcome["code"], 3);
    // busybox has no /proc, /dev, /etc/hosts or /etc/resolv.conf: each was created as a
    // mount point and is reported, so the caller can drop it from the layer.
    assert_eq!(
        outcome["created"],
        serde_json::json!(["/proc", "/dev", "/etc/hosts", "/etc/resolv.conf"])
    );
    assert_eq!(fs::read(root.path().join("etc/hosts")).unwrap(), b"");
}

#[test]
fn only_its_own_processes_are_visible() {
    let root = Root::new();
    let out = ok(&root.spec("ps -o pid,comm; echo ---; ls /proc | grep '^[0-9]*$'"));
    let (ps, ls) = out.split_once("---\n").unwrap();
    let pids: Vec<&str> = ps
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // sh is PID 1 (as in a docker build RUN); ps is its child.
    assert_eq!(pids, ["1", "2"], "{ps}");
    assert!(ps.lines().nth(1).unwrap().ends_with("sh"), "{ps}");
    let listed: Vec<u32> = ls.lines().map(|l| l.parse().unwrap()).collect();
    assert!(listed.iter().all(|&pid| pid < 10), "{ls}");
}

#[test]
fn nothing_outside_the_root_can_be_read_or_written() {
    let root = Root::new();
    let secret = root.dir.path().join("host-secret");
    fs::write(&secret, "host").unwrap();
    let secret_s = secret.to_str().unwrap();
    let script = format!(
        "cat {secret_s} 2>/dev/null && echo READ; \
         echo pwned > {secret_s} 2>/dev/null || echo cannot-write; \
         echo escaped > /../../../../escape; \
         ls /.. | grep -c rootfs || true"
    );
    let out = ok(&root.spec(&script));
    assert!(!out.contains("READ"), "{out}");
    // The directory of the host path does not exist in the root, so even creating fails.
    assert!(out.contains("cannot-write"), "{out}");
    assert!(out.ends_with("0\n"), "/.. is / inside the root: {out}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host");
    // `/../../..` is `/`: the file landed in the root, nowhere else.
    assert_eq!(
        fs::read_to_string(root.path().join("escape")).unwrap(),
        "escaped\n"
    );
    assert!(!Path::new("/escape").exists());
}

#[test]
fn a_symlinked_mount_point_cannot_reach_the_host() {
    let root = Root::new();
    let secret = root.dir.path().join("resolv-secret");
    fs::write(&secret, "host resolv\n").unwrap();
    // An image whose /etc/resolv.conf points at a host path: it must resolve inside the root.
    std::os::unix::fs::symlink(&secret, root.path().join("etc/resolv.conf")).unwrap();
    let mut spec = root.spec("cat /etc/resolv.conf");
    spec.resolv_conf = "nameserver 192.0.2.53\n".into();
    let ran = run(&spec);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host resolv\n");
    // The link's target does not exist in the root (its parents are missing): a clear
    // setup error, or, had they existed, a bind inside the root. Never the host's file.
    assert!(!ran.stdout.contains("host resolv"), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("/etc/resolv.conf"),
        "stderr should name the mount point: {}",
        ran.stderr
    );
}

#[test]
fn mounting_and_new_namespaces_are_refused() {
    let root = Root::new();
    let out = ok(&root.spec(
        "mkdir -p /mnt; mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?; \
         unshare -m true 2>/dev/null; echo unshare=$?; \
         grep -c ' /mnt ' /proc/self/mountinfo || true",
    ));
    assert!(!out.contains("mount=0"), "{out}");
    assert!(!out.contains("unshare=0"), "{out}");
    assert!(out.ends_with("0\n"), "{out}");
}

#[test]
fn root_has_dockers_default_capabilities_and_no_new_privs() {
    let root = Root::new();
    let out = ok(&root.spec("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"));
    for line in [
        "CapInh:\t0000000000000000",
        "CapPrm:\t00000000a80425fb",
        "CapEff:\t00000000a80425fb",
        "CapBnd:\t00000000a80425fb",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing in:\n{out}");
    }
}

#[test]
fn another_user_has_no_capabilities_and_the_same_bounding_set() {
    let root = Root::new();
    let mut spec = root.spec("grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status");
    spec.user = user(1000, 1000);
    let out = ok(&spec);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
}

#[test]
fn proc_is_masked_and_read_only_as_in_docker() {
    let root = Root::new();
    let out = ok(&root.spec(
        "echo '|/tmp/x' > /proc/sys/kernel/core_pattern 2>/dev/null; echo core=$?; \
         touch /proc/fs/x 2>/dev/null; echo fs=$?",
    ));
    assert_eq!(out, "core=1\nfs=1\n");
    // Masked files read as /dev/null, masked directories as empty; each only where this
    // kernel has it (not every kernel has /proc/kcore or /proc/sysrq-trigger).
    let present: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/interrupts",
        "/proc/acpi",
        "/proc/scsi",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    assert!(!present.is_empty(), "no masked path on this kernel");
    let script: String = present
        .iter()
        .map(|p| format!("cat {p}/* {p} 2>/dev/null | wc -c; "))
        .collect();
    let out = ok(&root.spec(&script));
    assert_eq!(out, "0\n".repeat(present.len()), "{present:?}");
    if Path::new("/proc/sysrq-trigger").exists() {
        let out = ok(&root.spec("echo h > /proc/sysrq-trigger 2>/dev/null; echo $?"));
        assert_eq!(out, "1\n");
    }
}

#[test]
fn dev_is_minimal_and_works() {
    let root = Root::new();
    let out = ok(&root.spec(
        "ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 3 /dev/zero | wc -c; \
         head -c 8 /dev/urandom | wc -c; test -c /dev/tty && echo tty; \
         test -c /dev/pts/ptmx && echo pts; echo shm > /dev/shm/x && cat /dev/shm/x",
    ));
    let mut lines = out.lines();
    let listing = lines.next().unwrap();
    assert_eq!(
        listing.trim(),
        "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    assert_eq!(lines.collect::<Vec<_>>(), ["3", "8", "tty", "pts", "shm"]);
}

#[test]
fn hostname_env_and_working_directory() {
    let root = Root::new();
    let mut spec = root.spec("hostname; pwd; env | sort");
    spec.hostname = "builder-7".into();
    spec.env = vec!["FOO=bar baz".into(), "PATH=/bin:/usr/bin".into()];
    spec.cwd = "/work/../app/src".into();
    spec.user = user(1000, 1001);
    let out = ok(&spec);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "builder-7");
    assert_eq!(lines[1], "/app/src");
    // Exactly the spec's env, plus HOME (PATH was given); nothing from the host's.
    let env: Vec<&str> = lines[2..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .collect();
    assert_eq!(env, ["FOO=bar baz", "HOME=/", "PATH=/bin:/usr/bin"]);
    // The missing working directory was created for the user, and /work not at all.
    let meta = fs::metadata(root.path().join("app/src")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1000, 1001, 0o755)
    );
    assert!(!root.path().join("work").exists());
}

#[test]
fn user_by_name_and_by_numbers() {
    let root = Root::new();
    let mut spec = root.spec("id; touch /root/x 2>/dev/null || echo denied; echo $HOME");
    spec.user = resolve_user(&root.path(), "nobody").unwrap();
    let out = ok(&spec);
    assert_eq!(
        out,
        "uid=65534(nobody) gid=65534(nogroup)\ndenied\n/nonexistent\n"
    );

    spec.user = resolve_user(&root.path(), "1000:1000").unwrap();
    assert_eq!(ok(&spec), "uid=1000 gid=1000\ndenied\n/\n");

    spec.user = resolve_user(&root.path(), "").unwrap();
    assert_eq!(ok(&spec), "uid=0(root) gid=0(root)\n/root\n");

    let err = resolve_user(&root.path(), "ghost").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user ghost: no matching entries in passwd file"
    );
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    let root = Root::new();
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo";
    let mut spec = root.spec(script);
    spec.network = Network::None;
    let out = ok(&spec);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"), "{out}");
    assert!(lines.next().unwrap().contains(",UP"), "{out}");

    // The host network shows the host's interfaces.
    let host = fs::read_to_string("/proc/net/dev").unwrap();
    let host_ifaces: Vec<String> = host
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect();
    spec.network = Network::Host;
    let out = ok(&spec);
    let ifaces: Vec<&str> = out.lines().take_while(|l| !l.contains(": ")).collect();
    assert_eq!(ifaces, host_ifaces);
}

#[test]
fn etc_files_have_the_given_contents_and_leave_the_root_alone() {
    let root = Root::new();
    fs::write(root.path().join("etc/hosts"), "from the image\n").unwrap();
    let mut spec =
        root.spec("cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo extra >> /etc/hosts");
    spec.hosts = "127.0.0.1\tlocalhost sandbox-test\n10.0.0.9\tregistry\n".into();
    spec.resolv_conf = "nameserver 192.0.2.53\nsearch example.invalid\n".into();
    let ran = run(&spec);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "127.0.0.1\tlocalhost sandbox-test\n10.0.0.9\tregistry\n---\n\
         nameserver 192.0.2.53\nsearch example.invalid\n"
    );
    // The image's file is untouched (writes went to the bind), and only resolv.conf,
    // /proc and /dev were created.
    assert_eq!(
        fs::read_to_string(root.path().join("etc/hosts")).unwrap(),
        "from the image\n"
    );
    assert_eq!(
        ran.outcome.unwrap()["created"],
        serde_json::json!(["/proc", "/dev", "/etc/resolv.conf"])
    );
}

#[test]
fn a_missing_command_is_a_setup_error() {
    let root = Root::new();
    let mut spec = root.spec("");
    spec.argv = vec!["no-such-tool".into(), "arg".into()];
    let err = kiln_sandbox::run(&spec, Path::new(support::DRIVER)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sandbox: exec: \"no-such-tool\": executable file not found in $PATH"
    );
}
