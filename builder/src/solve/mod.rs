//! The solver: walks the stages a target needs, in order, each once, and every step of a
//! stage through the cache or a [`Worker`]. Metadata steps change the config in process;
//! RUN, COPY, ADD and WORKDIR make layers, looked up by their [`CacheKey`] first. The
//! worker is a trait so that the solver is tested with a fake one (as BuildKit's is), and
//! so that stages can later run at once: a stage needs only its own base and the states
//! of the stages it names.

mod copy;
mod created;
mod export;
mod local;
mod output;
mod step;
mod worker;

use std::time::Duration;

use kiln_store::{Descriptor, ImageConfig, RootFs};

pub use created::Clock;
pub use export::{Format, Stored, store_image};
pub use local::{LocalWorker, Puller, mkdir_in_root};
pub use worker::{BaseImage, CopyFrom, CopyOp, Network, Op, RunOp, Worker, WorkerError};

use crate::{
    cache::{CacheIndex, CacheKey},
    metadata::StageState,
    plan::{Base, Plan},
};

/// An image as a stage builds it: the config (with its diffIDs and history), the layer
/// blobs beside the diffIDs, and the key of the last step.
#[derive(Clone, Debug)]
pub struct ImageState {
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
    pub key: CacheKey,
    pub stage: StageState,
}

impl ImageState {
    /// `FROM scratch`: no layers, and BuildKit's empty image config (WorkingDir `/`; the
    /// PATH every stage gets is added by the solver).
    pub fn scratch(platform: &kiln_store::Platform) -> ImageState {
        ImageState {
            config: ImageConfig {
                config: Some(kiln_store::RunConfig {
                    working_dir: Some("/".into()),
                    ..Default::default()
                }),
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..ImageConfig::default()
            },
            layers: Vec::new(),
            key: CacheKey::root("scratch"),
            stage: StageState::default(),
        }
    }

    fn from_base(base: BaseImage) -> ImageState {
        let mut config = base.config;
        // A base image's own history and time stay; the run config carries over as is.
        config.rootfs.kind = "layers".into();
        ImageState {
            key: CacheKey::root(&base.manifest.to_string()),
            config,
            layers: base.layers,
            stage: StageState::default(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct SolveOptions {
    /// Ignore the cache (results are still recorded, as docker does).
    pub no_cache: bool,
    /// The default network of RUN steps (`RUN --network` overrides it).
    pub network: Network,
}

/// Where a step stands, for the display.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStatus {
    Started,
    Cached,
    Done(Duration),
}

/// One line of progress: the stage, the step's position in it, what it is.
#[derive(Clone, Debug)]
pub struct StepEvent<'a> {
    pub stage: &'a str,
    pub index: usize,
    pub total: usize,
    pub text: &'a str,
    pub status: StepStatus,
}

pub trait Progress {
    fn step(&mut self, event: StepEvent<'_>);
}

/// No display (tests, `-q`).
pub struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: StepEvent<'_>) {}
}

/// Why a build stopped: where (the instruction's first line) and why, with the exit code of
/// a failing RUN.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SolveError {
    /// 1-based line of the instruction in the Dockerfile (0: not tied to one).
    pub line: usize,
    pub message: String,
    pub exit_code: Option<i32>,
    /// The last lines a failed RUN printed.
    pub output: Vec<String>,
}

impl SolveError {
    fn at(line: usize, e: WorkerError) -> SolveError {
        SolveError {
            line,
            message: e.message,
            exit_code: e.exit_code,
            output: e.output,
        }
    }

    pub(crate) fn plain(line: usize, message: String) -> SolveError {
        SolveError {
            line,
            message,
            exit_code: None,
            output: Vec::new(),
        }
    }
}

/// Build the plan's target: every needed stage once, in Dockerfile order.
pub fn solve(
    plan: &Plan,
    worker: &mut dyn Worker,
    cache: Option<&CacheIndex>,
    clock: &Clock,
    options: &SolveOptions,
    progress: &mut dyn Progress,
) -> Result<ImageState, SolveError> {
    let mut done: Vec<Option<ImageState>> = vec![None; plan.stages.len()];
    for &index in &plan.needed {
        let stage = &plan.stages[index];
        let start = match &stage.base {
            Base::Scratch => ImageState::scratch(&kiln_store::Platform::host()),
            Base::Stage(parent) => {
                let mut state = done[*parent].clone().expect("stages run in order");
                state.stage = StageState::default();
                state
            }
            Base::Image(name) => ImageState::from_base(
                worker
                    .base(name)
                    .map_err(|e| SolveError::at(stage.line, e))?,
            ),
        };
        let mut start = start;
        default_path(&mut start.config);
        // The base's ONBUILD triggers ran as this stage's first steps (the planner put
        // them there); the child does not pass them on, as docker's does not.
        if let Some(run) = start.config.config.as_mut() {
            run.set_on_build(Vec::new());
        }
        let label = match &stage.name {
            Some(n) => n.clone(),
            None => format!("stage-{index}"),
        };
        let mut cx = step::StageRun {
            plan,
            done: &done,
            label: &label,
            worker,
            cache,
            clock,
            options,
            progress,
        };
        let state = cx.run(stage, start)?;
        done[index] = Some(state);
    }
    Ok(done[plan.target].take().expect("the target is needed"))
}

/// BuildKit gives every stage a PATH when its image has none (docker's default).
fn default_path(config: &mut ImageConfig) {
    let run = config.config.get_or_insert_with(Default::default);
    let env = run.env.get_or_insert_with(Vec::new);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", kiln_sandbox::DEFAULT_PATH));
    }
}

#[cfg(test)]
mod tests;
