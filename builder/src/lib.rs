//! kiln's builder, the Dockerfile frontend and what builds stand on: `dockerfile` reads
//! Dockerfiles as BuildKit does, `shell` expands variables in their words, `plan` turns
//! them into a stage graph (what `kiln build --print=outline` shows), `context` applies
//! `.dockerignore`, `metadata` applies metadata instructions to an image config
//! (shared with `kiln import --change`, in `change`), and `files` selects, hashes and
//! writes what COPY and ADD transfer. Builds run in `solve` (the solver and the local
//! worker) over `cache` (step keys and their index) and `snapshot` (layers unpacked once,
//! a step's root an overlay); `container` is `kiln run`.

pub mod cache;
pub mod change;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod metadata;
pub mod plan;
pub mod shell;
pub mod snapshot;
pub mod solve;
