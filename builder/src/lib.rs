//! kiln's builder: Dockerfile -> plan -> execution -> image. For now it holds the
//! instruction subset that `kiln import --change` applies to an image config.

pub mod change;
pub mod context;
pub mod dockerfile;
#[doc(hidden)]
pub mod fuzzing;
pub mod plan;
pub mod shell;
pub mod snapshot;
