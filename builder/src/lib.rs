//! kiln's builder, the Dockerfile frontend: `dockerfile` reads Dockerfiles as BuildKit
//! does, `shell` expands variables in their words, `plan` turns them into a stage graph
//! (what `kiln build --print=outline` shows), `context` applies `.dockerignore`, and
//! `change` applies the instructions `kiln import --change` takes to an image config.
//! Running the steps of a plan is not part of it.

pub mod change;
pub mod context;
pub mod dockerfile;
#[doc(hidden)]
pub mod fuzzing;
pub mod plan;
pub mod shell;
