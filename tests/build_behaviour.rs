//! `kiln build` beyond the fixtures, as root: what the cache re-runs when one input
//! changes, what a RUN step can see and do inside the sandbox, the errors bad input gets
//! (and the store left as it was), and what remains after a failed, interrupted or killed
//! build (nothing, once the next build has cleaned up).

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::{Kiln, with_busybox_as};

fn context(kiln: &Kiln, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = kiln.scratch(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        fs::write(dir.join(path), content).unwrap();
    }
    dir
}

/// Build with plain progress; (success, the status word of each step in order).
fn build(kiln: &Kiln, dir: &Path, extra: &[&str]) -> (bool, Vec<String>, String) {
    let mut args = vec!["build", "--progress", "plain", "-t", "t:1"];
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    let out = kiln.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let statuses = stderr
        .lines()
        .filter_map(|l| {
            let word = l.split_whitespace().nth(2)?;
            matches!(word, "CACHED" | "DONE").then(|| word.to_string())
        })
        .collect();
    (out.status.success(), statuses, stderr)
}

const CACHE_FILE: &str = "FROM busybox\nARG V=1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a-copy\n\
COPY b.txt /b.txt\nRUN echo \"$V\" > /v\nRUN cat /b.txt > /b-copy\n";

#[test]
fn the_cache_reruns_what_reads_a_change_and_what_follows() {
    let kiln = with_busybox_as("busybox");
    let dir = context(&kiln, "ctx", CACHE_FILE, &[("a.txt", "a"), ("b.txt", "b")]);
    let (ok, first, err) = build(&kiln, &dir, &[]);
    assert!(ok, "{err}");
    assert_eq!(first, ["DONE"; 6]);

    // b.txt changes: the steps before its COPY come from the cache.
    fs::write(dir.join("b.txt"), "b2").unwrap();
    let (_, after_b, _) = build(&kiln, &dir, &[]);
    assert_eq!(
        after_b,
        ["CACHED", "CACHED", "CACHED", "DONE", "DONE", "DONE"]
    );
    let out = kiln.ok(&["run", "--rm", "t:1", "cat", "/b-copy"]);
    assert_eq!(out, "b2");

    // A new mtime alone changes nothing (docker's rule: content and mode count).
    let file = fs::File::options()
        .write(true)
        .open(dir.join("a.txt"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let (_, touched, _) = build(&kiln, &dir, &[]);
    assert_eq!(touched, ["CACHED"; 6]);

    // A changed build arg: every RUN after its ARG sees it (as an environment variable,
    // docker's rule), so the first RUN re-runs, and everything after it.
    let (_, arg, _) = build(&kiln, &dir, &["--build-arg", "V=2"]);
    assert_eq!(arg, ["CACHED", "CACHED", "DONE", "DONE", "DONE", "DONE"]);
    assert_eq!(kiln.ok(&["run", "--rm", "t:1", "cat", "/v"]), "2\n");

    // --no-cache runs everything, and the result is still recorded.
    let (_, fresh, _) = build(&kiln, &dir, &["--no-cache"]);
    assert_eq!(fresh, ["DONE"; 6]);
}

#[test]
fn run_steps_are_sandboxed() {
    let kiln = with_busybox_as("busybox");
    // A host directory the step tries to write into: it lands in the step's own tree.
    let host_dir = kiln.scratch("host-side");
    fs::create_dir_all(&host_dir).unwrap();
    let dockerfile = format!(
        "FROM busybox\nRUN mkdir -p {host} && touch {host}/pwned && ls /proc/1/root/ > /dev/null\n",
        host = host_dir.display()
    );
    let dir = context(&kiln, "escape", &dockerfile, &[]);
    let (ok, _, err) = build(&kiln, &dir, &[]);
    assert!(ok, "{err}");
    assert!(
        !host_dir.join("pwned").exists(),
        "a RUN wrote into the host"
    );

    let dockerfile = "FROM busybox\n\
RUN ps -o pid= > /ps.txt; grep CapEff /proc/self/status > /caps.txt; \
(mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused) > /mount.txt; \
hostname > /hostname.txt; ls /dev > /dev.txt\n";
    let dir = context(&kiln, "sandbox", dockerfile, &[]);
    let (ok, _, err) = build(&kiln, &dir, &[]);
    assert!(ok, "{err}");
    let cat = |path: &str| kiln.ok(&["run", "--rm", "t:1", "cat", path]);
    let pids: Vec<String> = cat("/ps.txt")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(
        pids.len() <= 3 && pids[0] == "1",
        "host processes visible: {pids:?}"
    );
    // Docker's default capability set, nothing more.
    assert_eq!(
        cat("/caps.txt").split_whitespace().nth(1),
        Some("00000000a80425fb")
    );
    assert_eq!(cat("/mount.txt"), "refused\n");
    let dev = cat("/dev.txt");
    for node in ["null", "zero", "random", "urandom", "tty", "pts", "shm"] {
        assert!(
            dev.split_whitespace().any(|d| d == node),
            "no /dev/{node}: {dev}"
        );
    }
    // The mount points the sandbox made (the base has no /proc, /dev or /etc/hosts) are
    // not left in the image.
    let out = kiln.scratch("sandboxed.tar");
    kiln.ok(&["export", "t:1", "-o", out.to_str().unwrap()]);
    let tree = common::tree_of(&fs::read(out).unwrap());
    for path in ["proc", "dev", "etc/hosts", "etc/resolv.conf"] {
        assert!(!tree.contains_key(path), "{path} was left in the image");
    }
    assert!(tree.contains_key("dev.txt"));
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_the_store_as_it_was() {
    let kiln = with_busybox_as("busybox");
    let before = kiln.snapshot();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "syntax",
            "FROM busybox\nRUN echo ok\nCOPY --nope=1 a /b\n",
            &[],
            ":3:",
        ),
        (
            "missing-source",
            "FROM busybox\nCOPY nope.txt /x\n",
            &[],
            "\"nope.txt\"",
        ),
        // (A name that is no stage is an image, as in docker: it would be pulled. Only
        // loopback here, hence a stage number and a local registry for the unknown base.)
        (
            "unknown-stage",
            "FROM busybox\nCOPY --from=5 /x /y\n",
            &[],
            "names stage 5",
        ),
        (
            "unknown-base",
            "FROM 127.0.0.1:9/no/such:image\nRUN true\n",
            &[],
            "base image 127.0.0.1:9/no/such:image",
        ),
        (
            "platform",
            "FROM busybox\n",
            &["--platform", "linux/arm64"],
            "--platform linux/arm64",
        ),
        (
            "target",
            "FROM busybox\n",
            &["--target", "nope"],
            "\"nope\"",
        ),
    ];
    for (name, dockerfile, extra, needle) in cases {
        let dir = context(&kiln, name, dockerfile, &[]);
        let (ok, _, err) = build(&kiln, &dir, extra);
        assert!(!ok, "{name}: built");
        assert!(err.contains(needle), "{name}: no {needle:?} in:\n{err}");
        assert_eq!(kiln.snapshot(), before, "{name}: the store changed");
    }

    // A RUN exiting 3: kiln says 3 and where; the layers of the steps before it may stay
    // (they are cached), but no image and no tag appear.
    let dir = context(
        &kiln,
        "exit3",
        "FROM busybox\nRUN touch /x\nRUN exit 3\n",
        &[],
    );
    let (ok, _, err) = build(&kiln, &dir, &[]);
    assert!(!ok);
    assert!(
        err.contains("exit code: 3") && err.contains("Dockerfile:3"),
        "{err}"
    );
    let after = kiln.snapshot();
    assert_eq!(
        (after.index, after.staging),
        (before.index.clone(), before.staging.clone())
    );

    let missing = kiln.scratch("no-such-context");
    let out = kiln.run(&["build", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(kiln.snapshot().index, before.index);
}

/// Mounts under `dir`, processes whose root is under it, and scratch directories.
fn leftovers(root: &Path) -> Vec<String> {
    let root = fs::canonicalize(root).unwrap();
    let mut out = Vec::new();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        if let Some(point) = line.split(' ').nth(4)
            && Path::new(point).starts_with(&root)
        {
            out.push(format!("mount {point}"));
        }
    }
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(r) = fs::read_link(entry.path().join("root"))
            && r.starts_with(&root)
        {
            out.push(format!(
                "process {:?} in {}",
                entry.file_name(),
                r.display()
            ));
        }
    }
    if let Ok(dir) = fs::read_dir(root.join("snapshots/scratch")) {
        for e in dir.flatten() {
            out.push(format!("scratch {}", e.path().display()));
        }
    }
    out
}

fn wait_gone(root: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = leftovers(root);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start a build whose second step sleeps, and return once that step runs.
fn start_sleeping_build(kiln: &Kiln, dir: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let mut child = kiln
        .cmd()
        .args(["build", "--progress", "plain", dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        let line = line.unwrap();
        // The step's own output (kiln's progress line quotes the command too).
        if line == "started-sleeping" {
            break;
        }
        assert!(Instant::now() < deadline, "the step never started");
    }
    // Keep reading in the background so the build never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

const SLEEPER: &str = "FROM busybox\nRUN touch /first\nRUN echo started-sleeping >&2; sleep 60\n";

#[test]
fn nothing_outlives_a_failed_an_interrupted_or_a_killed_build() {
    let kiln = with_busybox_as("busybox");
    let root = kiln.root();

    let failing = context(
        &kiln,
        "failing",
        "FROM busybox\nRUN touch /a && exit 1\n",
        &[],
    );
    assert!(!build(&kiln, &failing, &[]).0);
    assert_eq!(wait_gone(&root), Vec::<String>::new(), "after a failure");

    // Ctrl-C: the terminal signals the whole foreground process group.
    let dir = context(&kiln, "sleeper", SLEEPER, &[]);
    let mut child = start_sleeping_build(&kiln, &dir);
    let started = Instant::now();
    let pgid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the sleep ran on"
    );
    assert_eq!(wait_gone(&root), Vec::<String>::new(), "after SIGINT");

    // SIGKILL to kiln alone: its sandbox dies with it; its mount and scratch directory
    // stay until the next build cleans them.
    let mut child = start_sleeping_build(&kiln, &dir);
    child.kill().unwrap();
    child.wait().unwrap();
    let next = context(&kiln, "next", "FROM busybox\nRUN true\n", &[]);
    assert!(build(&kiln, &next, &[]).0);
    assert_eq!(
        wait_gone(&root),
        Vec::<String>::new(),
        "after SIGKILL and a build"
    );
}

/// `kiln build -q -t r:1` with SOURCE_DATE_EPOCH set (and `env`); the manifest digest.
fn reproducible_build(kiln: &Kiln, dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> String {
    let mut args = vec!["build", "-q", "-t", "r:1"];
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    let out = kiln
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .envs(env.iter().copied())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kiln.manifest_digest("r:1")
}

#[test]
fn source_date_epoch_makes_builds_reproducible() {
    let kiln = with_busybox_as("busybox");
    let dockerfile = "FROM busybox\nCOPY a.txt /a.txt\nRUN echo x > /x && touch /y\nCMD [\"sh\"]\n";
    let dir = context(&kiln, "repro", dockerfile, &[("a.txt", "a")]);
    let digest = |extra: &[&str]| reproducible_build(&kiln, &dir, &[], extra);
    let one = digest(&[]);
    // Later, every step run again: the files' mtimes and the steps' times differ; with
    // SOURCE_DATE_EPOCH the image must not.
    std::thread::sleep(Duration::from_millis(1100));
    let two = digest(&["--no-cache"]);
    assert_eq!(one, two, "two builds of the same inputs at different times");
    let config: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "r:1"])).unwrap();
    assert_eq!(config[0]["Config"]["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn the_context_or_the_dockerfile_alone_can_come_on_stdin() {
    let kiln = with_busybox_as("busybox");
    let dir = context(
        &kiln,
        "piped",
        "FROM busybox\nCOPY hello.txt /hello.txt\n",
        &[("hello.txt", "from a tar")],
    );
    // A gzip'd tar of the context.
    let bytes = std::process::Command::new("sh")
        .args(["-c", &format!("tar -C {} -c . | gzip -c", dir.display())])
        .output()
        .unwrap()
        .stdout;
    kiln.ok_stdin(&["build", "-q", "-t", "piped:1", "-"], &bytes);
    assert_eq!(
        kiln.ok(&["run", "--rm", "piped:1", "cat", "/hello.txt"]),
        "from a tar"
    );
    // A Dockerfile alone: the context is empty.
    kiln.ok_stdin(
        &["build", "-q", "-t", "piped:2", "-"],
        b"FROM busybox\nRUN echo alone > /alone\n",
    );
    assert_eq!(
        kiln.ok(&["run", "--rm", "piped:2", "cat", "/alone"]),
        "alone\n"
    );
    let out = kiln.run_stdin(&["build", "-q", "-"], b"FROM busybox\nCOPY x /x\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile (stdin):2:1") && err.contains("\"x\""),
        "{err}"
    );
    // The temporary context went with the build.
    let left: Vec<_> = fs::read_dir(kiln.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn add_of_a_url_with_a_checksum_is_cached_without_the_network() {
    use common::scripted::{Scripted, reply, sha256};
    use futures::FutureExt as _;
    const BODY: &str = "echo fetched\n";
    let kiln = with_busybox_as("busybox");
    let server = Scripted::new();
    server.script(|seen| {
        async move {
            if seen.path() == "/files/hello.sh" {
                let date = [("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")];
                reply(200, &date, BODY)
            } else {
                reply(404, &[], "")
            }
        }
        .boxed()
    });
    let url = format!("http://{}/files/hello.sh", server.addr);
    let dockerfile = format!(
        "FROM busybox\nADD --checksum={} {url} /opt/\nRUN sh /opt/hello.sh > /out\n",
        sha256(BODY.as_bytes())
    );
    let dir = context(&kiln, "add-url", &dockerfile, &[]);
    let (ok, first, err) = build(&kiln, &dir, &[]);
    assert!(ok, "{err}");
    assert_eq!(first, ["DONE", "DONE"]);
    assert_eq!(server.count("GET", "/files/hello.sh"), 1);
    let stat = [
        "run",
        "--rm",
        "t:1",
        "stat",
        "-c",
        "%a %u:%g %Y",
        "/opt/hello.sh",
    ];
    assert_eq!(kiln.ok(&stat), "600 0:0 1445412480\n");
    assert_eq!(kiln.ok(&["run", "--rm", "t:1", "cat", "/out"]), "fetched\n");

    // The checksum is the cache input: the second build asks the server nothing.
    let (ok, second, err) = build(&kiln, &dir, &[]);
    assert!(ok, "{err}");
    assert_eq!(second, ["CACHED", "CACHED"]);
    assert_eq!(server.count("GET", "/files/hello.sh"), 1);

    // A wrong checksum fails the step, naming the URL and both digests.
    let wrong = sha256(b"other");
    let bad = context(
        &kiln,
        "add-url-bad",
        &format!("FROM busybox\nADD --checksum={wrong} {url} /opt/\n"),
        &[],
    );
    let (ok, _, err) = build(&kiln, &bad, &[]);
    assert!(!ok);
    assert!(
        err.contains("digest mismatch") && err.contains(&url) && err.contains(&wrong),
        "{err}"
    );
    // The downloads' scratch directory went with the builds.
    assert_eq!(wait_gone(&kiln.root()), Vec::<String>::new());
}

#[test]
fn a_base_images_onbuild_triggers_run_in_the_child() {
    let kiln = with_busybox_as("busybox");
    let parent = context(
        &kiln,
        "parent",
        "FROM busybox\nONBUILD COPY marker.txt /from-trigger.txt\nONBUILD RUN echo ran > /trigger-ran\n",
        &[],
    );
    kiln.ok(&["build", "-q", "-t", "parent:1", parent.to_str().unwrap()]);
    let child = context(
        &kiln,
        "child",
        "FROM parent:1\nRUN cat /from-trigger.txt /trigger-ran > /both\n",
        &[("marker.txt", "child context\n")],
    );
    let (ok, steps, err) = build(&kiln, &child, &[]);
    assert!(ok, "{err}");
    assert_eq!(steps.len(), 3, "two triggers, then the RUN: {err}");
    assert_eq!(
        kiln.ok(&["run", "--rm", "t:1", "cat", "/both"]),
        "child context\nran\n"
    );
    let config: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "t:1"])).unwrap();
    assert!(
        config[0]["Config"]["config"]["OnBuild"].is_null(),
        "{config}"
    );
}

#[test]
fn the_copying_snapshotter_builds_the_same_image() {
    let kiln = with_busybox_as("busybox");
    let dockerfile = "FROM busybox\nCOPY a.txt /a.txt\nRUN rm /bin/vi && mkdir /d && echo x > /d/x && ln /d/x /d/y\nWORKDIR /w\n";
    let dir = context(&kiln, "backends", dockerfile, &[("a.txt", "a")]);
    let digest = |snapshotter: &str| {
        reproducible_build(
            &kiln,
            &dir,
            &[("KILN_SNAPSHOTTER", snapshotter)],
            &["--no-cache"],
        )
    };
    assert_eq!(digest("overlay"), digest("copy"));
    assert_eq!(wait_gone(&kiln.root()), Vec::<String>::new());
}
