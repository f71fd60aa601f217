//! The container's file system: pivot into the root, then `/proc`, a minimal `/dev`, the
//! `/etc/hosts` and `/etc/resolv.conf` binds, Docker's masked and read-only `/proc` paths.
//!
//! Everything after `pivot_root(".", ".")` names paths inside the new root: the old root
//! is still stacked on `/` until the end, but path walks start at the new root, so a
//! symlink in the image (`/etc -> /host/etc`) resolves inside the image, never on the
//! host. Keeping the old root until the end is also what a user namespace will need
//! (mounting a new `/proc` is allowed there only while a full one is still visible).

use std::path::{Path, PathBuf};

use crate::{
    container::{SetupError, Step},
    spec::Spec,
    syscall::{Kind, Syscall},
};

use libc::{
    MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
    MS_STRICTATIME,
};

/// Character devices Docker puts in `/dev`: (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// `/dev` links: (link, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// Docker's masked paths (hidden behind /dev/null or an empty read-only tmpfs).
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// Docker's read-only paths: without these, root in the sandbox could write
/// `/proc/sys/kernel/core_pattern` or `/proc/sysrq-trigger`, which act on the host.
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The files bind-mounted over the root's: (path, contents).
fn etc_files(spec: &Spec) -> [(&'static str, &str); 2] {
    [
        ("/etc/hosts", spec.hosts.as_str()),
        ("/etc/resolv.conf", spec.resolv_conf.as_str()),
    ]
}

/// Pivots into `spec.root` and builds its mounts. Returns the mount points it created in
/// the root, in creation order.
pub(crate) fn prepare(sys: &impl Syscall, spec: &Spec) -> Result<Vec<PathBuf>, SetupError> {
    let mut created = Vec::new();
    let p = Path::new;
    // Nothing mounted here may reach the host's mount table.
    sys.mount(None, p("/"), None, MS_REC | MS_PRIVATE, None)
        .step("making the mounts private")?;
    // pivot_root needs the new root to be a mount point.
    sys.mount(Some(&spec.root), &spec.root, None, MS_BIND | MS_REC, None)
        .step("bind-mounting the root")?;
    sys.chdir(&spec.root).step("entering the root")?;
    // The old root ends up stacked on the new one and is detached below.
    sys.pivot_root(p("."), p(".")).step("pivot_root")?;

    ensure(sys, p("/proc"), Kind::Dir, &mut created)?;
    sys.mount(
        Some(p("proc")),
        p("/proc"),
        Some("proc"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
    )
    .step("mounting /proc")?;
    ensure(sys, p("/dev"), Kind::Dir, &mut created)?;
    bind_etc_files(sys, spec, &mut created)?;
    dev(sys)?;
    mask_proc(sys)?;

    sys.umount2(p("."), MNT_DETACH)
        .step("detaching the old root")?;
    sys.chdir(p("/")).step("entering /")?;
    Ok(created)
}

/// Creates `path` (a directory or an empty file) if it is missing, and notes it.
fn ensure(
    sys: &impl Syscall,
    path: &Path,
    kind: Kind,
    created: &mut Vec<PathBuf>,
) -> Result<(), SetupError> {
    let what = path.display().to_string();
    if sys.stat(path).step(&what)?.is_some() {
        return Ok(());
    }
    match kind {
        Kind::Dir => sys.mkdir(path, 0o755),
        _ => sys.write_file(path, b"", 0o644),
    }
    .step(&format!("creating the mount point {what}"))?;
    created.push(path.to_path_buf());
    Ok(())
}

/// Writes the contents on a scratch tmpfs over `/dev`, binds them over the root's files and
/// drops the scratch mount: the binds keep their files, and nothing is left on disk.
fn bind_etc_files(
    sys: &impl Syscall,
    spec: &Spec,
    created: &mut Vec<PathBuf>,
) -> Result<(), SetupError> {
    let dev = Path::new("/dev");
    ensure(sys, Path::new("/etc"), Kind::Dir, created)?;
    for (path, _) in etc_files(spec) {
        ensure(sys, Path::new(path), Kind::File, created)?;
    }
    sys.mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        Some("mode=755,size=1m"),
    )
    .step("mounting a scratch tmpfs for /etc files")?;
    for (path, contents) in etc_files(spec) {
        let name = Path::new(path).file_name().expect("a file name");
        let scratch = dev.join(name);
        sys.write_file(&scratch, contents.as_bytes(), 0o644)
            .step(&format!("writing {path}"))?;
        sys.mount(Some(&scratch), Path::new(path), None, MS_BIND, None)
            .step(&format!("bind-mounting {path}"))?;
    }
    sys.umount2(dev, MNT_DETACH)
        .step("dropping the scratch tmpfs")
}

/// A tmpfs `/dev` with Docker's devices, devpts, shm, mqueue and the fd links.
fn dev(sys: &impl Syscall) -> Result<(), SetupError> {
    let p = Path::new;
    sys.mount(
        Some(p("tmpfs")),
        p("/dev"),
        Some("tmpfs"),
        MS_NOSUID | MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .step("mounting /dev")?;
    for &(name, major, minor) in DEVICES {
        let path = p("/dev").join(name);
        let what = path.display().to_string();
        sys.mknod(&path, libc::S_IFCHR | 0o666, major, minor)
            .step(&format!("creating {what}"))?;
        // mknod's mode went through the umask.
        sys.chmod(&path, 0o666).step(&what)?;
    }
    let submounts: [(&str, &str, libc::c_ulong, &str); 3] = [
        (
            "devpts",
            "/dev/pts",
            MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "tmpfs",
            "/dev/shm",
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=1777,size=65536k",
        ),
        (
            "mqueue",
            "/dev/mqueue",
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "",
        ),
    ];
    for (fstype, target, flags, data) in submounts {
        sys.mkdir(p(target), 0o755)
            .step(&format!("creating {target}"))?;
        let data = (!data.is_empty()).then_some(data);
        sys.mount(Some(p(fstype)), p(target), Some(fstype), flags, data)
            .step(&format!("mounting {target}"))?;
    }
    for &(link, target) in DEV_LINKS {
        sys.symlink(p(target), p(link))
            .step(&format!("linking {link}"))?;
    }
    Ok(())
}

/// Hides Docker's masked `/proc` paths and makes its read-only ones read-only. Paths this
/// kernel lacks are skipped.
fn mask_proc(sys: &impl Syscall) -> Result<(), SetupError> {
    let p = Path::new;
    for &path in MASKED {
        let what = format!("masking {path}");
        match sys.stat(p(path)).step(&what)? {
            None => {}
            Some(meta) if meta.kind == Kind::Dir => sys
                .mount(Some(p("tmpfs")), p(path), Some("tmpfs"), MS_RDONLY, None)
                .step(&what)?,
            Some(_) => sys
                .mount(Some(p("/dev/null")), p(path), None, MS_BIND, None)
                .step(&what)?,
        }
    }
    for &path in READ_ONLY {
        let what = format!("making {path} read-only");
        if sys.stat(p(path)).step(&what)?.is_none() {
            continue;
        }
        sys.mount(Some(p(path)), p(path), None, MS_BIND | MS_REC, None)
            .step(&what)?;
        // A remount must repeat the flags /proc was mounted with (locked in a user ns).
        let flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        sys.mount(Some(p(path)), p(path), None, flags, None)
            .step(&what)?;
    }
    Ok(())
}
