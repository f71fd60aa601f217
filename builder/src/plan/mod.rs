//! The stage graph: a parsed Dockerfile becomes stages — each with its base (an image,
//! `scratch`, or an earlier stage), its steps with variables expanded by BuildKit's rules,
//! and the stages it reads from (`FROM <stage>`, `COPY --from`, `RUN --mount=from=`).
//! `--target` keeps only what the target needs; cycles and bad references are errors;
//! ONBUILD triggers of a base stage (or image) run first in the child. Execution comes
//! later; `kiln build --print=outline` shows this.

mod outline;
mod scope;
mod step;

use std::collections::{BTreeMap, BTreeSet};

pub use scope::{ArgSource, BuildArgs, PREDEFINED, Scope};
use step::Context;

use crate::{
    dockerfile::{self, Args, Dockerfile, Instruction, Keyword},
    shell::{self, Env},
};
use kiln_store::Platform;

/// Planning errors point into the Dockerfile the way parse errors do: file:line:column,
/// the line, a caret.
pub type PlanError = dockerfile::ParseError;

#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

/// What the planner may ask about base images (their ONBUILD triggers); the store or a
/// registry answers in a build, nothing does for a plain outline.
pub trait BaseImages {
    fn onbuild(&self, image: &str) -> Vec<String>;
}

pub struct NoImages;

impl BaseImages for NoImages {
    fn onbuild(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The instruction with its variables expanded where BuildKit expands them.
    pub instruction: Instruction,
    /// Run because the base declared it with ONBUILD.
    pub triggered: bool,
    /// The stage's ARGs that have a value at this step, in declaration order: a RUN gets
    /// them as environment variables (ENV of the same name wins), and they are part of its
    /// cache key.
    pub args: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub line: usize,
    pub base: Base,
    pub platform: Option<String>,
    pub steps: Vec<Step>,
    /// Stages this one reads from.
    pub deps: BTreeSet<usize>,
    /// ARGs declared in the stage and the values they got.
    pub args: Vec<(String, Option<String>, ArgSource)>,
    /// Its own ONBUILD instructions, for stages built FROM it.
    pub onbuild: Vec<Instruction>,
    scope: Scope,
    consumed: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub target: usize,
    /// The target and what it needs, in Dockerfile order.
    pub needed: Vec<usize>,
    pub global_args: Vec<(String, Option<String>, ArgSource)>,
    pub warnings: Vec<String>,
}

pub fn plan(
    dockerfile: &Dockerfile,
    file: &str,
    options: &PlanOptions,
    images: &dyn BaseImages,
) -> Result<Plan, PlanError> {
    let err = |lines: (usize, usize), needle: &str, message: String| {
        dockerfile.error_at(file, lines, needle, message)
    };
    let escape = dockerfile.escape;
    let expand = |text: &str, env: &dyn Env, line: usize| -> Result<String, PlanError> {
        shell::expand_text(text, env, escape).map_err(|e| {
            err(
                (line, line),
                text,
                format!("cannot expand {text:?}: {}", e.message),
            )
        })
    };
    let mut build_args = BuildArgs::new(options.build_args.clone());

    // Global scope: the platform ARGs, then the ARGs before the first FROM.
    let mut global = Scope::default();
    let mut global_args = Vec::new();
    for (name, value) in platform_args(options) {
        global.set_arg(&name, &value);
        global_args.push((name, Some(value), ArgSource::Platform));
    }
    let first_from = dockerfile
        .instructions
        .iter()
        .position(|i| i.keyword == Keyword::From)
        .ok_or_else(|| {
            err(
                (1, 1),
                "",
                "the Dockerfile has no FROM: nothing to build".into(),
            )
        })?;
    let mut global_consumed = BTreeSet::new();
    for instruction in &dockerfile.instructions[..first_from] {
        let Args::Arg(decls) = &instruction.args else {
            return Err(err(
                (instruction.line, instruction.line),
                "",
                format!(
                    "{} before the first FROM: only ARG may come before FROM",
                    instruction.keyword.as_str()
                ),
            ));
        };
        for decl in decls {
            let (value, source) = match build_args.take(&decl.name) {
                Some(v) => {
                    global_consumed.insert(decl.name.clone());
                    (Some(v), ArgSource::BuildArg)
                }
                None => match &decl.default {
                    Some(d) => (
                        Some(expand(d, &global, instruction.line)?),
                        ArgSource::Default,
                    ),
                    None => (None, ArgSource::Unset),
                },
            };
            if let Some(v) = &value {
                global.set_arg(&decl.name, v);
            }
            global_args.retain(|(n, _, _)| n != &decl.name);
            global_args.push((decl.name.clone(), value, source));
        }
    }

    // Every stage's name, first: COPY --from may name a later stage.
    let names: Vec<Option<String>> = dockerfile.instructions[first_from..]
        .iter()
        .filter_map(|i| match &i.args {
            Args::From { stage, .. } => Some(stage.clone()),
            _ => None,
        })
        .collect();
    let find = |name: &str| names.iter().position(|n| n.as_deref() == Some(name));

    let mut stages: Vec<Stage> = Vec::new();
    let mut cx = Context {
        global: &global,
        build_args: &mut build_args,
        find: &find,
        err: &err,
        escape,
    };
    for instruction in &dockerfile.instructions[first_from..] {
        if let Args::From { image, stage } = &instruction.args {
            let index = stages.len();
            let line = instruction.line;
            let image = expand(image, &global, line)?;
            if image.is_empty() {
                return Err(err(
                    (line, line),
                    "",
                    "FROM names an empty image after expansion".into(),
                ));
            }
            let platform = instruction
                .flag("platform")
                .and_then(|f| f.value.as_deref())
                .map(|p| expand(p, &global, line))
                .transpose()?;
            let lowered = image.to_ascii_lowercase();
            let base = match names[..index]
                .iter()
                .position(|n| n.as_deref() == Some(&lowered))
            {
                Some(parent) => Base::Stage(parent),
                None if lowered == "scratch" => Base::Scratch,
                None => Base::Image(image.clone()),
            };
            let mut new = Stage {
                index,
                name: stage.clone(),
                line,
                base: base.clone(),
                platform,
                steps: Vec::new(),
                deps: BTreeSet::new(),
                args: Vec::new(),
                onbuild: Vec::new(),
                scope: Scope::default(),
                consumed: BTreeSet::new(),
            };
            let triggers: Vec<Instruction> = match &base {
                Base::Stage(parent) => {
                    new.deps.insert(*parent);
                    new.scope.inherit_env(&stages[*parent].scope);
                    stages[*parent].onbuild.clone()
                }
                Base::Image(image) => {
                    let text = images.onbuild(image).join("\n");
                    if text.trim().is_empty() {
                        Vec::new()
                    } else {
                        let mut triggers = dockerfile::parse(&format!("ONBUILD of {image}"), &text)
                            .map_err(|e| {
                                err(
                                    (line, line),
                                    "",
                                    format!("an ONBUILD trigger of {image}: {}", e.message),
                                )
                            })?
                            .instructions;
                        // They were written elsewhere: they run at this FROM.
                        for t in &mut triggers {
                            (t.line, t.end_line) = (line, line);
                        }
                        triggers
                    }
                }
                Base::Scratch => Vec::new(),
            };
            for trigger in triggers {
                step::apply(&mut new, &trigger, true, &mut cx)?;
            }
            stages.push(new);
            continue;
        }
        let current = stages.last_mut().expect("a FROM came first");
        step::apply(current, instruction, false, &mut cx)?;
    }

    let target = match &options.target {
        Some(t) => find(&t.to_ascii_lowercase()).ok_or_else(|| {
            // Under the first FROM, where the stages begin (not line 1, a `# syntax=`).
            let first = stages.first().map_or(1, |s| s.line);
            let mut e = err(
                (first, first),
                "",
                format!("target stage {t:?} could not be found"),
            );
            let known: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
            if !known.is_empty() {
                e.message
                    .push_str(&format!(" (stages: {})", known.join(", ")));
            }
            e
        })?,
        None => stages.len() - 1,
    };
    let needed = needed(&stages, target).map_err(|cycle| {
        let names: Vec<String> = cycle.iter().map(|i| stage_label(&stages[*i])).collect();
        err(
            (stages[cycle[0]].line, stages[cycle[0]].line),
            "",
            format!("circular dependency between stages: {}", names.join(" -> ")),
        )
    })?;

    let mut consumed = global_consumed;
    for i in &needed {
        consumed.extend(stages[*i].consumed.iter().cloned());
    }
    let mut warnings = Vec::new();
    let unused: Vec<String> = options
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !PREDEFINED.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "build-arg {} not consumed: no ARG in the stages built declares {}",
            unused.join(", "),
            if unused.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(Plan {
        stages,
        target,
        needed,
        global_args,
        warnings,
    })
}

fn platform_args(options: &PlanOptions) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [
        ("TARGET", &options.target_platform),
        ("BUILD", &options.build_platform),
    ] {
        let mut platform = format!("{}/{}", p.os, p.architecture);
        if let Some(v) = &p.variant {
            platform.push('/');
            platform.push_str(v);
        }
        out.push((format!("{prefix}PLATFORM"), platform));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    out
}

fn stage_label(stage: &Stage) -> String {
    match &stage.name {
        Some(n) => format!("{n} (stage {})", stage.index),
        None => format!("stage {}", stage.index),
    }
}

/// The target and every stage it needs, in order; or a cycle.
fn needed(stages: &[Stage], target: usize) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        stages: &[Stage],
        i: usize,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|p| *p == i).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        path.push(i);
        for dep in &stages[i].deps {
            visit(stages, *dep, marks, path)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        Ok(())
    }
    let mut marks = vec![Mark::New; stages.len()];
    visit(stages, target, &mut marks, &mut Vec::new())?;
    Ok((0..stages.len())
        .filter(|i| marks[*i] == Mark::Done)
        .collect())
}

#[cfg(test)]
mod tests;
