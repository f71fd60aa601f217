//! kiln's builder: Dockerfile -> plan -> execution -> image. The metadata instructions
//! (`metadata`) are shared with `kiln import --change` (`change`).

pub mod change;
pub mod context;
pub mod dockerfile;
#[doc(hidden)]
pub mod fuzzing;
pub mod metadata;
pub mod plan;
pub mod shell;
