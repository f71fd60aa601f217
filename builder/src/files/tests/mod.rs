//! Tests of COPY and ADD: tempdir contexts and roots; the few that need root (chown)
//! skip when not run as root (CI runs as root).

mod add;
mod copy;
mod digest;
mod security;
mod server;
mod url;

use std::{
    cell::RefCell,
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
};

use tempfile::TempDir;

use super::{Downloads, FilesError, Source, Transfer, apply, input_digest};
use crate::{context::Dockerignore, dockerfile};

/// A context directory and a destination root.
pub(super) struct Fx {
    pub ctx: TempDir,
    pub root: TempDir,
    pub ignore: Dockerignore,
    /// Dropped before `scratch`, which holds its directory.
    pub downloads: RefCell<Downloads>,
    _scratch: TempDir,
}

impl Fx {
    pub fn new() -> Fx {
        let scratch = tempfile::tempdir().unwrap();
        Fx {
            ctx: tempfile::tempdir().unwrap(),
            root: tempfile::tempdir().unwrap(),
            ignore: Dockerignore::default(),
            downloads: RefCell::new(Downloads::new(scratch.path())),
            _scratch: scratch,
        }
    }

    pub fn ctx(&self) -> &Path {
        self.ctx.path()
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn source(&self) -> Source<'_> {
        Source::Context {
            dir: self.ctx.path(),
            ignore: &self.ignore,
        }
    }

    /// Run one COPY/ADD line (a Dockerfile instruction) from the context, WORKDIR `/`.
    pub fn run(&self, line: &str) -> Result<(), FilesError> {
        self.run_in(line, "/")
    }

    pub fn run_in(&self, line: &str, workdir: &str) -> Result<(), FilesError> {
        let mut downloads = self.downloads.borrow_mut();
        apply(
            &self.source(),
            &transfer(line),
            self.root(),
            workdir,
            &mut downloads,
        )
    }

    pub fn digest(&self, line: &str) -> String {
        self.try_digest(line).unwrap()
    }

    pub fn try_digest(&self, line: &str) -> Result<String, FilesError> {
        let mut downloads = self.downloads.borrow_mut();
        input_digest(&self.source(), &transfer(line), &mut downloads).map(|d| d.to_string())
    }

    /// Contents of a file below the root.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.root().join(rel)).is_ok()
    }

    pub fn mode(&self, rel: &str) -> u32 {
        fs::symlink_metadata(self.root().join(rel)).unwrap().mode() & 0o7777
    }

    /// Every path below the root, sorted, directories with a trailing `/`.
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        list(self.root(), "", &mut out);
        out.sort();
        out
    }
}

fn list(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            out.push(format!("{name}/"));
            list(&e.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// Write a file (parents created).
pub(super) fn put(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

pub(super) fn chmod(dir: &Path, rel: &str, mode: u32) {
    fs::set_permissions(dir.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

/// The Transfer of one instruction (heredoc bodies may follow on later lines).
pub(super) fn transfer(text: &str) -> Transfer {
    let d = dockerfile::parse("Dockerfile", &format!("FROM scratch\n{text}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    Transfer::from_instruction(&d.instructions[1]).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
