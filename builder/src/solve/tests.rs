//! The solver with a fake worker: which steps reach the worker, which the cache answers,
//! and what keys do.

use std::collections::HashMap;

use kiln_store::{BlobStore, Descriptor, Digest, ImageConfig, RootFs, RunConfig};

use super::*;
use crate::{
    cache::{CacheIndex, LayerRecord},
    dockerfile,
    plan::{NoImages, PlanOptions, plan},
};

/// Records what it was asked; every layer is a stored blob named after the step.
struct Fake {
    blobs: BlobStore,
    ran: Vec<String>,
    inputs: HashMap<String, Digest>,
}

impl Fake {
    fn new(dir: &std::path::Path) -> Fake {
        Fake {
            blobs: BlobStore::open(dir.join("blobs"), dir.join("tmp")).unwrap(),
            ran: Vec::new(),
            inputs: HashMap::new(),
        }
    }
}

impl Worker for Fake {
    fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn base(&mut self, name: &str) -> Result<BaseImage, WorkerError> {
        self.ran.push(format!("base {name}"));
        Ok(BaseImage {
            manifest: Digest::of(name.as_bytes()),
            config: ImageConfig {
                config: Some(RunConfig {
                    env: Some(vec!["PATH=/bin".into()]),
                    ..RunConfig::default()
                }),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..ImageConfig::default()
            },
            layers: Vec::new(),
        })
    }

    fn inputs(&mut self, op: &CopyOp<'_>) -> Result<Digest, WorkerError> {
        let summary = op.instruction.summary();
        Ok(self
            .inputs
            .get(&summary)
            .cloned()
            .unwrap_or_else(|| Digest::of(b"")))
    }

    fn layer(&mut self, _: &ImageState, op: &Op<'_>) -> Result<LayerRecord, WorkerError> {
        let what = match op {
            Op::Run(run) => {
                if run.argv.last().is_some_and(|a| a.contains("exit 3")) {
                    return Err(WorkerError {
                        message: "exited with code 3".into(),
                        exit_code: Some(3),
                        output: Vec::new(),
                    });
                }
                format!("run {} env={}", run.argv.join(" "), run.env.join(","))
            }
            Op::Copy(c) => format!("copy {}", c.instruction.summary()),
            Op::Mkdir { path, .. } => format!("mkdir {path}"),
        };
        self.ran.push(what.clone());
        let digest = self.blobs.put_bytes(what.as_bytes()).unwrap();
        Ok(LayerRecord {
            diff_id: Digest::of(what.as_bytes()),
            blob: Descriptor::new("application/vnd.oci.image.layer.v1.tar", digest, 1),
        })
    }
}

fn planned(text: &str, args: &[(&str, &str)]) -> Plan {
    let parsed = dockerfile::parse("Dockerfile", text).unwrap();
    let options = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PlanOptions::default()
    };
    plan(&parsed, "Dockerfile", &options, &NoImages).unwrap()
}

struct Run {
    state: ImageState,
    cached: usize,
    ran: Vec<String>,
}

struct Count(usize);

impl Progress for Count {
    fn step(&mut self, e: StepEvent<'_>) {
        if e.status == StepStatus::Cached {
            self.0 += 1;
        }
    }
}

fn build(dir: &std::path::Path, plan: &Plan, inputs: &[(&str, &str)]) -> Run {
    let mut fake = Fake::new(dir);
    for (summary, content) in inputs {
        fake.inputs
            .insert(summary.to_string(), Digest::of(content.as_bytes()));
    }
    let cache = CacheIndex::open(dir).unwrap();
    let mut count = Count(0);
    let state = solve(
        plan,
        &mut fake,
        Some(&cache),
        &Clock::new(Some(0)),
        &SolveOptions::default(),
        &mut count,
    )
    .unwrap();
    Run {
        state,
        cached: count.0,
        ran: fake.ran,
    }
}

const MULTI: &str = "FROM base AS build\nARG V=1\nRUN make\nCOPY src /src\nRUN make install\n\
FROM scratch AS unused\nRUN never\n\
FROM base\nCOPY --from=build /out /out\nCMD [\"/out\"]\n";

#[test]
fn only_needed_stages_run_and_a_second_build_is_all_cached() {
    let dir = tempfile::tempdir().unwrap();
    let plan = planned(MULTI, &[]);
    let first = build(dir.path(), &plan, &[]);
    assert_eq!(
        first.ran,
        vec![
            "base base",
            "run /bin/sh -c make env=PATH=/bin,V=1",
            "copy COPY src /src",
            "run /bin/sh -c make install env=PATH=/bin,V=1",
            "base base",
            "copy COPY --from=build /out /out",
        ],
        "the unused stage never runs; the base is asked once per stage using it"
    );
    let second = build(dir.path(), &plan, &[]);
    assert!(
        second.ran.iter().all(|r| r.starts_with("base")),
        "{:?}",
        second.ran
    );
    assert_eq!(second.cached, 6, "four steps in build, two in the target");
    assert_eq!(
        spec_json(&first.state),
        spec_json(&second.state),
        "same config, so same image"
    );
    assert_eq!(first.state.layers.len(), 1);
}

fn spec_json(state: &ImageState) -> Vec<u8> {
    kiln_store::spec::to_json(&state.config)
}

#[test]
fn a_changed_input_reruns_from_the_step_that_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = planned(MULTI, &[]);
    build(dir.path(), &plan, &[("COPY src /src", "one")]);
    let again = build(dir.path(), &plan, &[("COPY src /src", "two")]);
    let ran: Vec<&String> = again
        .ran
        .iter()
        .filter(|r| !r.starts_with("base"))
        .collect();
    assert_eq!(
        ran,
        [
            "copy COPY src /src",
            "run /bin/sh -c make install env=PATH=/bin,V=1",
            "copy COPY --from=build /out /out",
        ]
    );
}

#[test]
fn a_changed_build_arg_reruns_from_the_first_run_that_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &planned(MULTI, &[]), &[]);
    let again = build(dir.path(), &planned(MULTI, &[("V", "2")]), &[]);
    assert_eq!(again.ran[1], "run /bin/sh -c make env=PATH=/bin,V=2");
    assert_eq!(again.cached, 1, "only the ARG step itself: {:?}", again.ran);
}

#[test]
fn a_failing_run_names_its_line_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let plan = planned("FROM base\nRUN true\nRUN exit 3\nRUN after\n", &[]);
    let mut fake = Fake::new(dir.path());
    let e = solve(
        &plan,
        &mut fake,
        None,
        &Clock::new(None),
        &SolveOptions::default(),
        &mut Silent,
    )
    .unwrap_err();
    assert_eq!((e.line, e.exit_code), (3, Some(3)));
    assert!(!fake.ran.iter().any(|r| r.contains("after")));
}

#[test]
fn metadata_steps_change_the_config_and_history_only() {
    let dir = tempfile::tempdir().unwrap();
    let plan = planned(
        "FROM base\nENV A=1\nWORKDIR /w\nENTRYPOINT [\"e\"]\nLABEL k=v\n",
        &[],
    );
    let run = build(dir.path(), &plan, &[]);
    assert_eq!(run.ran, vec!["base base", "mkdir /w"]);
    let config = run.state.config.config.unwrap();
    assert_eq!(config.working_dir.as_deref(), Some("/w"));
    assert_eq!(config.env.unwrap(), vec!["PATH=/bin", "A=1"]);
    let history = &run.state.config.history;
    assert_eq!(history.len(), 4);
    assert_eq!(
        history.iter().filter(|h| !h.empty_layer).count(),
        run.state.layers.len()
    );
    assert_eq!(
        run.state.config.created.as_deref(),
        Some("1970-01-01T00:00:00Z"),
        "SOURCE_DATE_EPOCH clamps every time"
    );
}
