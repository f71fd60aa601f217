//! What the hostile-registry tests share: time limits, kiln runs with a credentials
//! directory, and a scripted registry that takes pushes.

use std::{path::Path, process::Output, time::Duration};

use base64::Engine as _;

use super::{
    Kiln,
    scripted::{Scripted, Seen, now, reply, run_within, sha256},
    tar_of_files,
};

/// No command here should take long; one that does is waiting forever.
pub const LIMIT: Duration = Duration::from_secs(90);
/// Short timeouts, so that the timeout tests run in seconds.
pub const TIMEOUTS: [&str; 4] = ["--connect-timeout", "1s", "--read-timeout", "2s"];

pub fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

/// Run kiln with `docker_config` as its credentials directory (an empty one if none).
pub fn kiln_run(kiln: &Kiln, docker_config: Option<&Path>, args: &[&str]) -> Output {
    let empty = kiln.scratch("docker-empty");
    let mut cmd = kiln.cmd();
    cmd.env("DOCKER_CONFIG", docker_config.unwrap_or(&empty))
        .args(args);
    run_within(cmd, LIMIT)
}

pub fn succeeded(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stderr}");
}

pub fn failed(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} succeeded but should not have"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("{what}:\n{stderr}");
    stderr
}

/// A store holding one small image, `app:1`, whose layer is `size` bytes of data.
pub fn kiln_with_image(size: usize) -> Kiln {
    let kiln = Kiln::new();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    let tar = kiln.file("rootfs.tar", &tar_of_files(&[("data.bin".into(), data)]));
    kiln.ok(&["import", "--compression", "none", &tar, "app:1"]);
    kiln
}

/// A registry that takes pushes: HEAD says no blob, POST opens a session whose Location
/// `location` makes, PUT of a manifest succeeds. Anything needs `auth` when given.
pub fn push_target(
    server: &Scripted,
    auth: Option<String>,
    location: impl Fn() -> String + Send + Sync + 'static,
) {
    server.script(move |seen: Seen| {
        if let Some(auth) = &auth
            && seen.authorization().as_deref() != Some(auth.as_str())
        {
            return now(reply(401, &[("www-authenticate", "Basic realm=\"a\"")], ""));
        }
        let path = seen.path().to_string();
        now(match seen.method.as_str() {
            "HEAD" | "GET" if path == "/v2/" => reply(200, &[], ""),
            "HEAD" => reply(404, &[], ""),
            "POST" if path.ends_with("/blobs/uploads/") => {
                reply(202, &[("location", &location())], "")
            }
            "PUT" if path.contains("/manifests/") => {
                reply(201, &[("docker-content-digest", &sha256(&seen.body))], "")
            }
            _ => reply(404, &[], ""),
        })
    });
}
