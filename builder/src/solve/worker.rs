//! `Worker`: what the solver asks of the machine — base images, the content of what a COPY
//! reads, and layers made by running a step. `solve::local::LocalWorker` does it with the
//! store, snapshots and the sandbox; the solver's tests use a fake.

use kiln_store::{BlobStore, Descriptor, Digest, ImageConfig};

use super::ImageState;
use crate::{cache::LayerRecord, dockerfile::Instruction};

/// A base image as `FROM` or `COPY --from` names it.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The platform manifest's digest (the root of the stage's cache keys).
    pub manifest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network, as docker build's default bridge gives outbound access.
    #[default]
    Host,
    /// Only a loopback interface.
    None,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        match text {
            "default" | "host" => Some(Network::Host),
            "none" => Some(Network::None),
            _ => None,
        }
    }
}

/// A RUN, ready for the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOp {
    pub argv: Vec<String>,
    /// `KEY=VALUE`: the config's Env, then the stage's ARGs ENV does not shadow.
    pub env: Vec<String>,
    /// The USER as written (resolved in the step's root by the worker).
    pub user: String,
    pub workdir: String,
    pub network: Network,
}

/// Where a COPY or ADD reads from.
#[derive(Clone, Copy, Debug)]
pub enum CopyFrom<'a> {
    Context,
    /// Another stage's or an image's file system (`--from`).
    State(&'a ImageState),
}

#[derive(Clone, Debug)]
pub struct CopyOp<'a> {
    pub instruction: &'a Instruction,
    pub from: CopyFrom<'a>,
    /// The stage's WORKDIR, against which a relative destination is resolved.
    pub workdir: String,
}

/// A step that changes files.
#[derive(Clone, Debug)]
pub enum Op<'a> {
    Run(RunOp),
    Copy(CopyOp<'a>),
    /// WORKDIR: the directory, owned by the USER (BuildKit's rule).
    Mkdir {
        path: String,
        user: String,
    },
}

/// A worker's failure, in words for the user; `exit_code` when a command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerError {
    pub message: String,
    pub exit_code: Option<i32>,
    /// The last lines a failed command printed.
    pub output: Vec<String>,
}

impl WorkerError {
    pub fn new(message: impl Into<String>) -> WorkerError {
        WorkerError {
            message: message.into(),
            exit_code: None,
            output: Vec::new(),
        }
    }
}

pub trait Worker {
    /// Where layers are stored (a cache record counts only while its blob is there).
    fn blobs(&self) -> &BlobStore;

    /// The image `name` names, from the store or a registry.
    fn base(&mut self, name: &str) -> Result<BaseImage, WorkerError>;

    /// A digest of everything a COPY or ADD reads (content and metadata of exactly the
    /// files it selects): its input to the cache key.
    fn inputs(&mut self, op: &CopyOp<'_>) -> Result<Digest, WorkerError>;

    /// Run `op` on top of `state`'s file system; its changes, stored as a layer.
    fn layer(&mut self, state: &ImageState, op: &Op<'_>) -> Result<LayerRecord, WorkerError>;
}
