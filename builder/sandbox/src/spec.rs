//! What one sandboxed process is (`Spec`, handed from the parent to the helper as JSON) and
//! how it ended (`Outcome`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The PATH docker and BuildKit give a process whose environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One process to run in a fresh container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The container's root directory, prepared by the caller (an overlay mount or a plain
    /// directory). The sandbox writes into it only what the command writes, plus the mount
    /// points it had to create (listed in [`Outcome::created`]).
    pub root: PathBuf,
    /// Exec form: `argv[0]` is looked up in the `PATH` of `env` inside the root when it has
    /// no `/`. The caller turns shell form into `[SHELL..., cmd]`.
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries, the whole environment of the process. `PATH` is added when
    /// missing ([`DEFAULT_PATH`]) and `HOME` from the user's passwd entry, as docker does.
    pub env: Vec<String>,
    /// Absolute working directory inside the root; created if missing (see
    /// `container::workdir` for the ownership rule).
    pub cwd: PathBuf,
    /// Who the process runs as, already resolved (see [`crate::resolve_user`]).
    pub user: User,
    pub hostname: String,
    pub network: Network,
    /// Contents bind-mounted over the root's `/etc/hosts` (never written into the root).
    pub hosts: String,
    /// Contents bind-mounted over the root's `/etc/resolv.conf`.
    pub resolv_conf: String,
}

impl Spec {
    /// A spec with docker build's defaults: root user, `/` as working directory, the host's
    /// network, hostname `kiln`, a localhost-only `/etc/hosts` and an empty resolv.conf.
    pub fn new(root: impl Into<PathBuf>, argv: Vec<String>) -> Spec {
        let hostname = "kiln".to_string();
        Spec {
            root: root.into(),
            argv,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: PathBuf::from("/"),
            user: User::root(),
            hosts: default_hosts(&hostname),
            hostname,
            network: Network::Host,
            resolv_conf: String::new(),
        }
    }

    /// Checks what the helper cannot report well once it has started.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err("no command to run".into());
        }
        if !self.root.is_absolute() {
            return Err(format!("root {} is not absolute", self.root.display()));
        }
        if !self.root.is_dir() {
            return Err(format!("root {} is not a directory", self.root.display()));
        }
        // The host's own root would give the command the host's file system.
        if self.root.canonicalize().is_ok_and(|r| r == Path::new("/")) {
            return Err("the root may not be the host's /".into());
        }
        if !self.cwd.is_absolute() {
            return Err(format!(
                "working directory {} is not absolute",
                self.cwd.display()
            ));
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 || self.hostname.contains('\0') {
            return Err(format!("hostname {:?} is not 1 to 64 bytes", self.hostname));
        }
        let nul = |s: &String| s.contains('\0');
        if self.argv.iter().any(nul) || self.env.iter().any(nul) {
            return Err("argv and env may not hold NUL bytes".into());
        }
        if let Some(bad) = self.env.iter().find(|e| !e.contains('=')) {
            return Err(format!("environment entry {bad:?} has no '='"));
        }
        Ok(())
    }

    /// The environment the process gets: `env` plus `PATH` and `HOME` where missing.
    pub(crate) fn process_env(&self) -> Vec<String> {
        let mut env = self.env.clone();
        let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
        if !has(&env, "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        if !has(&env, "HOME") {
            env.push(format!("HOME={}", self.user.home.as_deref().unwrap_or("/")));
        }
        env
    }

    /// `PATH` from the process environment, for looking up `argv[0]`.
    pub(crate) fn search_path(&self) -> String {
        self.process_env()
            .iter()
            .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
            .unwrap_or_else(|| DEFAULT_PATH.to_string())
    }
}

/// An `/etc/hosts` as docker build writes it for a sandbox named `hostname`.
pub fn default_hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// A resolved user: numeric ids only, so the helper never reads the root's passwd files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (set with setgroups; empty clears the host's).
    pub groups: Vec<u32>,
    /// Home directory from the passwd entry, for `HOME` when the env has none.
    pub home: Option<String>,
}

impl User {
    pub fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: Some("/root".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The host's network namespace (docker build's default gives outbound access too).
    Host,
    /// A new network namespace with only `lo`, up.
    None,
}

/// How the sandboxed process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// Paths (inside the root, absolute, in creation order) the sandbox created as mount
    /// points: `/proc`, `/dev`, `/etc`, `/etc/hosts`, `/etc/resolv.conf` when the root
    /// lacked them. docker does not leave these in a layer, so the caller removes them
    /// from the step's diff (in reverse order).
    pub created: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal.
    Signaled(i32),
    /// The sandbox was stopped (Ctrl-C, [`crate::Stopper::stop`], or kiln's own death)
    /// because its helper received this signal; every process in it was killed.
    Interrupted(i32),
}

impl Status {
    /// The exit code a shell would show: the code, or 128 + the signal number.
    pub fn code(&self) -> i32 {
        match *self {
            Status::Exited(code) => code,
            Status::Signaled(sig) | Status::Interrupted(sig) => 128 + sig,
        }
    }

    pub fn success(&self) -> bool {
        *self == Status::Exited(0)
    }
}

/// Where an absolute in-container path lies on the host, under `root` (for a caller that
/// removes [`Outcome::created`] from a step's diff).
pub fn host_path(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}
