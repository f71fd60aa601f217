//! Power-cut safety of `kiln registry serve`, seen from the system calls: every object
//! it confirms was fsynced before it got its name, and its directory after.

mod common;

use std::fs;

use common::{files_under, require_tool, servers::Registry, sh, skopeo, with_busybox_as};

/// What the server did to the files under its storage, from `strace -y`: which paths were
/// fsynced (file contents, or a directory's entries), in what order with the renames.
#[derive(Default)]
struct SyncTrace {
    /// Paths whose content is durable: fsynced, or renamed from such a path.
    durable: std::collections::HashSet<String>,
    /// For each path renamed into place, the index of that rename among all events.
    renamed_at: std::collections::HashMap<String, usize>,
    /// Each directory fsync, with its event index.
    dir_syncs: Vec<(String, usize)>,
}

impl SyncTrace {
    fn parse(trace: &str) -> SyncTrace {
        let mut out = SyncTrace::default();
        for (index, line) in trace.lines().enumerate() {
            let Some(call) = line.split_whitespace().nth(1) else {
                continue;
            };
            if call.starts_with("fsync(") || call.starts_with("fdatasync(") {
                // fsync(12</path/to/file>) = 0, or "<unfinished ...>" when threads interleave.
                let path = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(path, _)| path.to_string())
                    .unwrap_or_default();
                if std::path::Path::new(&path).is_dir() {
                    out.dir_syncs.push((path.clone(), index));
                }
                out.durable.insert(path);
            } else if call.starts_with("rename")
                && (line.ends_with("= 0") || line.ends_with("<unfinished ...>"))
            {
                // An interleaved call shows its arguments on the "unfinished" line; a rename
                // that then failed is caught by the final check (the file must exist).
                let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
                let [from, to, ..] = quoted[..] else {
                    panic!("a rename without two paths: {line}");
                };
                if out.durable.contains(from) {
                    out.durable.insert(to.to_string());
                }
                out.renamed_at.insert(to.to_string(), index);
            }
        }
        out
    }

    /// The file's content was fsynced before it got its name, and its directory after.
    fn check(&self, file: &std::path::Path) -> Result<(), String> {
        let path = file.to_str().unwrap();
        if !self.durable.contains(path) {
            return Err(format!(
                "{path}: never fsynced before it was renamed into place"
            ));
        }
        let Some(&renamed) = self.renamed_at.get(path) else {
            return Err(format!("{path}: not written by rename"));
        };
        let dir = file.parent().unwrap().to_str().unwrap();
        if !self
            .dir_syncs
            .iter()
            .any(|(d, at)| d == dir && *at > renamed)
        {
            return Err(format!(
                "{path}: its directory was not fsynced after the rename"
            ));
        }
        Ok(())
    }
}

/// Power-cut safety: every blob, manifest, link and tag the registry confirmed was fsynced
/// before it got its name, and its directory after, whichever way it was uploaded
/// (kiln's one PUT, skopeo's POST + PATCH + PUT, kiln's chunked PATCHes).
#[test]
fn every_object_is_fsynced_before_it_is_confirmed() {
    require_tool("strace");
    require_tool("skopeo");
    let kiln = with_busybox_as("busybox:latest");
    let rich = kiln.file("rich.tar", &common::rich_rootfs());
    kiln.ok(&["import", &rich, "rich:1"]);
    let big = kiln.scratch("big");
    fs::create_dir_all(&big).unwrap();
    let noise: Vec<u8> = (0u32..300_000)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    fs::write(big.join("noise"), noise).unwrap();
    let big_tar = kiln.scratch("big.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        big.display(),
        big_tar.display()
    ));
    kiln.ok(&[
        "import",
        "--compression",
        "none",
        big_tar.to_str().unwrap(),
        "big:1",
    ]);

    let trace = kiln.scratch("strace.txt");
    let registry = Registry::start_under(
        &kiln,
        &[
            "strace",
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            "-o",
            trace.to_str().unwrap(),
        ],
    );
    let r = registry.addr.clone();
    kiln.ok(&["push", "busybox:latest", &format!("{r}/one/put:1")]);
    skopeo(&format!(
        "copy --dest-tls-verify=false oci:{}:docker.io/library/rich:1 docker://{r}/skopeo/patch:1",
        kiln.root().join("images").display()
    ));
    kiln.ok(&[
        "push",
        "--chunk-size",
        "256KiB",
        "big:1",
        &format!("{r}/kiln/chunked:1"),
    ]);

    let server = sh(&format!("pgrep -P {}", registry.pid()));
    sh(&format!("kill -TERM {}", server.trim()));
    registry.wait();

    let trace = SyncTrace::parse(&fs::read_to_string(&trace).unwrap());
    let storage = kiln.root().join("registry");
    let mut files = Vec::new();
    files_under(&storage.join("blobs"), &mut files);
    let blobs = files.len();
    files_under(&storage.join("repositories"), &mut files);
    // Three images: at least 3 layers, 3 configs and 3 manifests.
    assert!(blobs >= 9, "only {blobs} blobs stored");
    let problems: Vec<String> = files.iter().filter_map(|f| trace.check(f).err()).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Run `kiln ARGS` under umask 022 and strace (as `every_object_…` traces the server),
/// with `stdin` and `DOCKER_CONFIG=docker_config`; require success and return the trace.
fn traced_kiln(
    kiln: &common::Kiln,
    docker_config: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> SyncTrace {
    use std::io::Write;
    let trace = kiln.scratch("strace-cli.txt");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "umask 022 && exec \"$@\"", "sh"])
        .args(["strace", "-f", "-qq", "-y", "-e"])
        .arg("trace=fsync,fdatasync,rename,renameat,renameat2")
        .arg("-o")
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_ROOT", kiln.root())
        .env("DOCKER_CONFIG", docker_config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    SyncTrace::parse(&fs::read_to_string(&trace).unwrap())
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file the commands write by name goes through one durable write: fsynced, renamed
/// into place, directory fsynced; archives and layouts 0644 under umask 022 whichever
/// command wrote them (`copy` used to write 0600 where `save -o` wrote 0644), and the
/// credentials file 0600.
#[test]
fn archives_layouts_and_credentials_are_durable_with_one_mode_per_kind() {
    require_tool("strace");
    require_tool("htpasswd");
    let kiln = with_busybox_as("busybox:1");
    let users = kiln.scratch("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} alice s3cret 2>/dev/null",
        users.display()
    ));
    let registry = Registry::start_with(&kiln, &["--htpasswd", users.to_str().unwrap()]);
    let out = kiln.scratch("out");
    fs::create_dir_all(&out).unwrap();
    let docker_config = out.join("docker");
    let at = |name: &str| out.join(name).to_str().unwrap().to_string();

    let mut written = Vec::new();
    let mut run = |args: &[&str], stdin: &str, files: &[std::path::PathBuf], mode: u32| {
        let trace = traced_kiln(&kiln, &docker_config, args, stdin);
        for file in files {
            if let Err(problem) = trace.check(file) {
                written.push(format!("kiln {args:?}: {problem}"));
            }
            let actual = mode_of(file);
            if actual != mode {
                written.push(format!(
                    "kiln {args:?}: {} is {actual:o}, expected {mode:o}",
                    file.display()
                ));
            }
        }
    };
    run(
        &["save", "-o", &at("saved.tar"), "busybox:1"],
        "",
        &[out.join("saved.tar")],
        0o644,
    );
    run(
        &["export", "-o", &at("exported.tar"), "busybox:1"],
        "",
        &[out.join("exported.tar")],
        0o644,
    );
    run(
        &[
            "copy",
            "busybox:1",
            &format!("docker-archive:{}", at("copied.tar")),
        ],
        "",
        &[out.join("copied.tar")],
        0o644,
    );
    run(
        &[
            "copy",
            "busybox:1",
            &format!("oci-archive:{}", at("copied-oci.tar")),
        ],
        "",
        &[out.join("copied-oci.tar")],
        0o644,
    );
    run(
        &["copy", "busybox:1", &format!("oci:{}:1", at("layout"))],
        "",
        &[out.join("layout/index.json")],
        0o644,
    );
    run(
        &["login", "-u", "alice", "--password-stdin", &registry.addr],
        "s3cret\n",
        &[docker_config.join("config.json")],
        0o600,
    );
    assert!(written.is_empty(), "{}", written.join("\n"));

    // Nothing temporary is left beside the outputs.
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .chain(fs::read_dir(&docker_config).unwrap())
        .chain(fs::read_dir(out.join("layout")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kiln-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
