//! One stage's steps, in order: each gets its cache key; a hit takes the recorded result,
//! a miss asks the worker (for steps that change files) or applies the config change.

use std::time::Instant;

use kiln_store::History;

use super::{
    Clock, CopyFrom, CopyOp, ImageState, Op, Progress, RunOp, SolveError, SolveOptions, StepEvent,
    StepStatus, Worker, WorkerError, worker::Network,
};
use crate::{
    cache::{CacheIndex, CacheKey, CacheRecord},
    dockerfile::{Args, Command, Instruction, Keyword},
    metadata::{self, DEFAULT_SHELL},
    plan::{Plan, Stage, Step},
};

pub(super) struct StageRun<'a> {
    pub plan: &'a Plan,
    pub done: &'a [Option<ImageState>],
    pub label: &'a str,
    pub worker: &'a mut dyn Worker,
    pub cache: Option<&'a CacheIndex>,
    pub clock: &'a Clock,
    pub options: &'a SolveOptions,
    pub progress: &'a mut dyn Progress,
}

/// What a step does once its key is known.
enum Action<'a> {
    /// Changes the config only (with this history text, if any).
    Config(Option<String>),
    /// Makes a layer.
    Layer { op: Op<'a>, created_by: String },
}

impl StageRun<'_> {
    pub fn run(&mut self, stage: &Stage, mut state: ImageState) -> Result<ImageState, SolveError> {
        let total = stage.steps.len();
        for (i, step) in stage.steps.iter().enumerate() {
            let instruction = &step.instruction;
            let text = instruction.summary();
            let fail = |e: WorkerError| SolveError::at(instruction.line, e);
            // `--from` of another stage or an image, resolved before the key needs it.
            let from_image;
            let from = match copy_from(instruction) {
                None => CopyFrom::Context,
                Some(name) => match stage_named(self.plan, self.done, stage, &name) {
                    Some(done) => CopyFrom::State(done),
                    None => {
                        let base = self.worker.base(&name).map_err(fail)?;
                        from_image = ImageState::from_base(base);
                        CopyFrom::State(&from_image)
                    }
                },
            };
            let mut next = state.clone();
            let (key, action) = self.prepare(step, &mut next, from)?;
            self.progress.step(StepEvent {
                stage: self.label,
                index: i + 1,
                total,
                text: &text,
                status: StepStatus::Started,
            });
            let started = Instant::now();
            let hit = match (self.cache, self.options.no_cache) {
                (Some(cache), false) => cache.get(&key, self.worker.blobs()),
                _ => None,
            };
            let cached = hit.is_some();
            let record = match (hit, action) {
                (Some(record), action) => {
                    self.record(&mut next, &record, action_history(&action));
                    record
                }
                (None, Action::Config(created_by)) => {
                    let record = CacheRecord {
                        created: self.clock.now(),
                        layer: None,
                    };
                    self.record(&mut next, &record, created_by);
                    record
                }
                (None, Action::Layer { op, created_by }) => {
                    let layer = self.worker.layer(&state, &op).map_err(fail)?;
                    let record = CacheRecord {
                        created: self.clock.now(),
                        layer: Some(layer),
                    };
                    self.record(&mut next, &record, Some(created_by));
                    record
                }
            };
            if let (Some(cache), false) = (self.cache, cached) {
                // A cache that cannot be written costs speed next time, not this build.
                let _ = cache.put(&key, &record);
            }
            let status = if cached {
                StepStatus::Cached
            } else {
                StepStatus::Done(started.elapsed())
            };
            self.progress.step(StepEvent {
                stage: self.label,
                index: i + 1,
                total,
                text: &text,
                status,
            });
            next.key = key;
            state = next;
        }
        Ok(state)
    }

    /// The step's key and what it does; config changes are applied to `next` here.
    fn prepare<'s>(
        &mut self,
        step: &'s Step,
        next: &mut ImageState,
        from: CopyFrom<'s>,
    ) -> Result<(CacheKey, Action<'s>), SolveError> {
        let instruction = &step.instruction;
        let line = instruction.line;
        let summary = instruction.summary();
        let heredocs: String = instruction
            .heredocs
            .iter()
            .map(|h| format!("{}\n{}", h.name, h.content))
            .collect();
        let parent = next.key.clone();
        let config = next.config.config.clone().unwrap_or_default();
        match instruction.keyword {
            Keyword::Arg => {
                // The value is not in the key: only steps that use it (RUN gets every ARG,
                // others through expansion) change when it does.
                let names: Vec<&str> = match &instruction.args {
                    Args::Arg(decls) => decls.iter().map(|d| d.name.as_str()).collect(),
                    _ => Vec::new(),
                };
                let key = parent.then(&[("arg", &names.join(" "))]);
                Ok((key, Action::Config(Some(arg_history(instruction)))))
            }
            Keyword::Run => {
                let run = run_op(step, &next.config, self.options.network)
                    .map_err(|e| SolveError::at(line, e))?;
                let key = parent.then(&[
                    ("run", &summary),
                    ("heredocs", &heredocs),
                    ("argv", &run.argv.join("\0")),
                    ("env", &run.env.join("\0")),
                    ("user", &run.user),
                    ("workdir", &run.workdir),
                    ("network", &format!("{:?}", run.network)),
                ]);
                let created_by = format!("RUN {} # buildkit", run_history(step, &run.argv));
                Ok((
                    key,
                    Action::Layer {
                        op: Op::Run(run),
                        created_by,
                    },
                ))
            }
            Keyword::Copy | Keyword::Add => {
                let workdir = config.working_dir.clone().unwrap_or_else(|| "/".into());
                let op = CopyOp {
                    instruction,
                    from,
                    workdir: workdir.clone(),
                };
                let inputs = self
                    .worker
                    .inputs(&op)
                    .map_err(|e| SolveError::at(line, e))?;
                let from_key = match from {
                    CopyFrom::Context => String::from("context"),
                    CopyFrom::State(s) => s.key.hex().to_string(),
                };
                let key = parent.then(&[
                    ("copy", &summary),
                    ("heredocs", &heredocs),
                    ("inputs", &inputs.to_string()),
                    ("from", &from_key),
                    ("workdir", &workdir),
                ]);
                let created_by = format!("{} # buildkit", copy_history(instruction));
                Ok((
                    key,
                    Action::Layer {
                        op: Op::Copy(op),
                        created_by,
                    },
                ))
            }
            k if metadata::is_metadata(k) => {
                let applied = metadata::apply(&mut next.config, &mut next.stage, instruction)
                    .map_err(|e| {
                        SolveError::plain(line, format!("{}: {}", k.as_str(), e.message))
                    })?;
                let key = parent.then(&[("config", &summary)]);
                match applied.mkdir {
                    Some(path) => {
                        let user = config.user.clone().unwrap_or_default();
                        let key = key.then(&[("mkdir", &path), ("user", &user)]);
                        let created_by = applied.created_by.unwrap_or_default();
                        Ok((
                            key,
                            Action::Layer {
                                op: Op::Mkdir { path, user },
                                created_by: format!("{created_by} # buildkit"),
                            },
                        ))
                    }
                    None => Ok((key, Action::Config(applied.created_by))),
                }
            }
            other => Err(SolveError::plain(
                line,
                format!("{} cannot appear inside a stage", other.as_str()),
            )),
        }
    }

    /// Add the step's result to `next`: its layer (if any) and its history entry.
    fn record(&self, next: &mut ImageState, record: &CacheRecord, created_by: Option<String>) {
        let created = self.clock.clamp(&record.created);
        if let Some(layer) = &record.layer {
            next.config.rootfs.diff_ids.push(layer.diff_id.clone());
            next.layers.push(layer.blob.clone());
        }
        if let Some(created_by) = created_by {
            next.config.history.push(History {
                created: Some(created.clone()),
                created_by: Some(created_by),
                empty_layer: record.layer.is_none(),
                ..History::default()
            });
        }
        next.config.created = Some(created);
    }
}

/// The stage `--from=name` names (by name or index), if it is one.
fn stage_named<'d>(
    plan: &Plan,
    done: &'d [Option<ImageState>],
    stage: &Stage,
    name: &str,
) -> Option<&'d ImageState> {
    let index = match name.parse::<usize>() {
        Ok(n) if n < stage.index => n,
        Ok(_) => return None,
        Err(_) => {
            let lowered = name.to_ascii_lowercase();
            plan.stages[..stage.index]
                .iter()
                .position(|s| s.name.as_deref() == Some(lowered.as_str()))?
        }
    };
    done[index].as_ref()
}

fn action_history(action: &Action<'_>) -> Option<String> {
    match action {
        Action::Config(created_by) => created_by.clone(),
        Action::Layer { created_by, .. } => Some(created_by.clone()),
    }
}

/// `--from` of a COPY or ADD.
fn copy_from(instruction: &Instruction) -> Option<String> {
    if !matches!(instruction.keyword, Keyword::Copy | Keyword::Add) {
        return None;
    }
    instruction.flag("from").and_then(|f| f.value.clone())
}

/// The process a RUN starts: exec form as written, shell form through the SHELL, with the
/// heredocs it names written back into the script (the shell reads them); a RUN that is
/// only a heredoc runs the heredoc's text as the script, as BuildKit does.
pub(super) fn run_op(
    step: &Step,
    image: &kiln_store::ImageConfig,
    default_network: Network,
) -> Result<RunOp, WorkerError> {
    let instruction = &step.instruction;
    for flag in &instruction.flags {
        match flag.name.as_str() {
            "network" => {}
            other => {
                return Err(WorkerError::new(format!(
                    "RUN --{other} is not supported yet"
                )));
            }
        }
    }
    let network = match instruction.flag("network").and_then(|f| f.value.as_deref()) {
        None => default_network,
        Some(v) => Network::parse(v).ok_or_else(|| {
            WorkerError::new(format!("RUN --network={v}: expected default, none or host"))
        })?,
    };
    let config = image.config.clone().unwrap_or_default();
    let argv = match &instruction.args {
        Args::Command(Command::Exec(argv)) => argv.clone(),
        Args::Command(Command::Shell(script)) => {
            let mut shell = config
                .shell()
                .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
            shell.push(script_with_heredocs(script, instruction));
            shell
        }
        _ => return Err(WorkerError::new("RUN needs a command")),
    };
    let mut env = config.env.clone().unwrap_or_default();
    for (name, value) in &step.args {
        if !env
            .iter()
            .any(|e| e.split('=').next() == Some(name.as_str()))
        {
            env.push(format!("{name}={value}"));
        }
    }
    Ok(RunOp {
        argv,
        env,
        user: config.user.clone().unwrap_or_default(),
        workdir: config.working_dir.clone().unwrap_or_else(|| "/".into()),
        network,
    })
}

fn script_with_heredocs(script: &str, instruction: &Instruction) -> String {
    let docs = &instruction.heredocs;
    if docs.is_empty() {
        return script.to_string();
    }
    // `RUN <<EOF` alone: the heredoc is the script.
    let bare = script
        .trim()
        .trim_start_matches("<<")
        .trim_start_matches('-');
    let bare = bare.trim_matches(|c| c == '"' || c == '\'');
    if docs.len() == 1 && bare == docs[0].name {
        return docs[0].content.clone();
    }
    let mut out = script.to_string();
    out.push('\n');
    for doc in docs {
        out.push_str(&doc.content);
        if !doc.content.ends_with('\n') && !doc.content.is_empty() {
            out.push('\n');
        }
        out.push_str(&doc.name);
        out.push('\n');
    }
    out
}

/// BuildKit's `created_by` for a RUN: the build args it saw (`|N K=V …`), then the argv.
fn run_history(step: &Step, argv: &[String]) -> String {
    let command = argv.join(" ");
    if step.args.is_empty() {
        return command;
    }
    let args: Vec<String> = step.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("|{} {} {command}", args.len(), args.join(" "))
}

fn copy_history(instruction: &Instruction) -> String {
    match &instruction.args {
        Args::Paths {
            sources,
            destination,
            ..
        } => format!(
            "{} {} {destination}",
            instruction.keyword.as_str(),
            sources.join(" ")
        ),
        _ => instruction.summary(),
    }
}

fn arg_history(instruction: &Instruction) -> String {
    match &instruction.args {
        Args::Arg(decls) => {
            let parts: Vec<String> = decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                })
                .collect();
            format!("ARG {}", parts.join(" "))
        }
        _ => instruction.summary(),
    }
}
