//! `Dockerd`: a Docker engine (Debian's docker.io, 20.10) of the test's own, as
//! shared/PEERS.md starts one: vfs storage, no bridge or iptables, its data, sockets and
//! client config in a temporary directory. It listens on a unix socket only, and docker
//! treats 127.0.0.0/8 registries as plain HTTP, so tests reach kiln's registry unchanged.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::require_tool;

pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require_tool("dockerd");
        require_tool("docker");
        // Short paths: containerd's sockets live under the exec root and a unix socket
        // path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ])
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("x").display()))
            .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut dockerd = Dockerd { child, dir };
        dockerd.wait_ready();
        dockerd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.run(&["version"]).status.success() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dockerd did not answer within 60 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// A scratch path inside the engine's directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            // The client's own config (credentials from `docker login`) stays here too.
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run, require success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run, require failure, return stdout and stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "docker {args:?} succeeded:\n{text}");
        text
    }

    /// `docker image inspect` of one field, e.g. `{{.Id}}`.
    pub fn inspect(&self, image: &str, format: &str) -> String {
        self.ok(&["image", "inspect", "--format", format, image])
            .trim()
            .to_string()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dockerd {
    /// SIGTERM, so that dockerd stops the containerd it started; SIGKILL after 20 s.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
