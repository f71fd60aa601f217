//! The stage graph: a parsed Dockerfile becomes stages — each with its base (an image,
//! `scratch`, or an earlier stage), its steps with variables expanded by BuildKit's rules,
//! and the stages it reads from (`FROM <stage>`, `COPY --from`, `RUN --mount=from=`).
//! `--target` keeps only what the target needs; cycles and bad references are errors;
//! ONBUILD triggers of a base stage (or image) run first in the child. Execution comes
//! later; `kiln build --print=outline` shows this.

mod scope;

use std::collections::{BTreeMap, BTreeSet};

pub use scope::{ArgSource, BuildArgs, PREDEFINED, Scope};

use crate::{
    dockerfile::{self, Args, Command, Dockerfile, Flag, Instruction, Keyword, Pair},
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
                let step = step(
                    &mut new,
                    &trigger,
                    &global,
                    &mut build_args,
                    &find,
                    &err,
                    escape,
                )?;
                new.steps.push(Step {
                    instruction: step,
                    triggered: true,
                });
            }
            stages.push(new);
            continue;
        }
        let current = stages.last_mut().expect("a FROM came first");
        let expanded = step(
            current,
            instruction,
            &global,
            &mut build_args,
            &find,
            &err,
            escape,
        )?;
        current.steps.push(Step {
            instruction: expanded,
            triggered: false,
        });
    }

    let target = match &options.target {
        Some(t) => find(&t.to_ascii_lowercase()).ok_or_else(|| {
            let mut e = err((1, 1), "", format!("target stage {t:?} could not be found"));
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

/// Builds an error at (first line, last line) of an instruction, pointing at a word.
type ErrorAt<'a> = dyn Fn((usize, usize), &str, String) -> PlanError + 'a;

/// Expand one instruction of `stage` where BuildKit expands (never RUN, CMD or
/// ENTRYPOINT text), apply ARG and ENV to the stage's scope, and record references.
#[allow(clippy::too_many_arguments)]
fn step(
    stage: &mut Stage,
    instruction: &Instruction,
    global: &Scope,
    build_args: &mut BuildArgs,
    find: &dyn Fn(&str) -> Option<usize>,
    err: &ErrorAt<'_>,
    escape: char,
) -> Result<Instruction, PlanError> {
    let lines = (instruction.line, instruction.end_line);
    let expand = |text: &str, scope: &Scope| -> Result<String, PlanError> {
        shell::expand_text(text, scope, escape).map_err(|e| {
            err(
                lines,
                text,
                format!("cannot expand {text:?}: {}", e.message),
            )
        })
    };
    let mut out = instruction.clone();
    // Flag values expand (`--from=$STAGE`, `--mount=target=$DIR`, `--chown=$USER`).
    for flag in &mut out.flags {
        if let Some(v) = &flag.value {
            flag.value = Some(expand(v, &stage.scope)?);
        }
    }
    let scope = &stage.scope;
    match (&instruction.args, &mut out.args) {
        (Args::Arg(decls), Args::Arg(expanded)) => {
            for (decl, slot) in decls.iter().zip(expanded.iter_mut()) {
                let (value, source) = if let Some(v) = build_args.take(&decl.name) {
                    stage.consumed.insert(decl.name.clone());
                    (Some(v), ArgSource::BuildArg)
                } else if let Some(d) = &decl.default {
                    (Some(expand(d, &stage.scope)?), ArgSource::Default)
                } else if let Some(g) = global.get(&decl.name) {
                    (Some(g.to_string()), ArgSource::Global)
                } else {
                    (None, ArgSource::Unset)
                };
                if let Some(v) = &value {
                    stage.scope.set_arg(&decl.name, v);
                }
                slot.default = value.clone();
                stage.args.retain(|(n, _, _)| n != &decl.name);
                stage.args.push((decl.name.clone(), value, source));
            }
        }
        (Args::Pairs(_), Args::Pairs(pairs)) => {
            // Every pair of one ENV sees the variables as they were before it.
            for pair in pairs.iter_mut() {
                *pair = Pair {
                    key: expand(&pair.key, scope)?,
                    value: expand(&pair.value, scope)?,
                };
            }
            if instruction.keyword == Keyword::Env {
                for pair in pairs.iter() {
                    stage.scope.set_env(&pair.key, &pair.value);
                }
            }
        }
        (
            Args::Paths { .. },
            Args::Paths {
                sources,
                destination,
                ..
            },
        ) => {
            for source in sources.iter_mut() {
                if !source.starts_with("<<") {
                    *source = expand(source, scope)?;
                }
            }
            *destination = expand(destination, scope)?;
        }
        (Args::List(_), Args::List(items)) => {
            let mut expanded = Vec::new();
            for item in items.iter() {
                let words = shell::expand(item, scope, escape).map_err(|e| {
                    err(
                        lines,
                        item,
                        format!("cannot expand {item:?}: {}", e.message),
                    )
                })?;
                if instruction.keyword == Keyword::Expose {
                    expanded.extend(words.words);
                } else {
                    expanded.push(words.text);
                }
            }
            *items = expanded;
        }
        (Args::Text(_), Args::Text(text)) if instruction.keyword != Keyword::Maintainer => {
            *text = expand(text, scope)?;
        }
        (Args::Onbuild(inner), _) => stage.onbuild.push((**inner).clone()),
        _ => {}
    }
    // References to other stages.
    let mut refs: Vec<String> = Vec::new();
    if matches!(instruction.keyword, Keyword::Copy | Keyword::Add)
        && let Some(Flag { value: Some(v), .. }) = out.flag("from")
    {
        refs.push(v.clone());
    }
    if instruction.keyword == Keyword::Run {
        for mount in out.flags.iter().filter(|f| f.name == "mount") {
            if let Some(from) = mount_option(mount.value.as_deref().unwrap_or(""), "from") {
                refs.push(from);
            }
        }
    }
    for reference in refs {
        let lowered = reference.to_ascii_lowercase();
        let target = match reference.parse::<usize>() {
            Ok(n) if n >= stage.index => {
                return Err(err(
                    lines,
                    "--from",
                    format!(
                        "--from={n} names stage {n}, which is not before this one (stage {})",
                        stage.index
                    ),
                ));
            }
            Ok(n) => Some(n),
            Err(_) => find(&lowered),
        };
        match target {
            Some(t) if t == stage.index => {
                return Err(err(
                    lines,
                    &reference,
                    format!(
                        "circular dependency: stage {} reads from itself",
                        stage_label(stage)
                    ),
                ));
            }
            Some(t) => {
                stage.deps.insert(t);
            }
            None => {} // an image, pulled when the stage runs
        }
    }
    Ok(out)
}

/// `key=value` from a `--mount` value (`type=cache,from=build,target=/x`).
fn mount_option(value: &str, key: &str) -> Option<String> {
    value.split(',').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Plan {
    /// `kiln build --print=outline`: the target, the ARGs in play, and each needed
    /// stage's steps after expansion.
    pub fn outline(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let target = &self.stages[self.target];
        let _ = writeln!(out, "TARGET  {}", stage_label(target));
        let shown: Vec<_> = self
            .global_args
            .iter()
            .filter(|(_, _, s)| *s != ArgSource::Platform)
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(out, "\nGLOBAL ARGS");
            for (name, value, source) in shown {
                let _ = writeln!(out, "  {}", arg_line(name, value, source));
            }
        }
        for i in &self.needed {
            let stage = &self.stages[*i];
            let base = match &stage.base {
                Base::Scratch => "scratch".to_string(),
                Base::Image(image) => image.clone(),
                Base::Stage(p) => format!("{} (stage)", stage_label(&self.stages[*p])),
            };
            let platform = stage
                .platform
                .as_ref()
                .map(|p| format!(" --platform={p}"))
                .unwrap_or_default();
            let _ = writeln!(out, "\n{}  FROM{platform} {base}", stage_label(stage));
            if !stage.deps.is_empty() {
                let deps: Vec<String> = stage
                    .deps
                    .iter()
                    .map(|d| stage_label(&self.stages[*d]))
                    .collect();
                let _ = writeln!(out, "  needs: {}", deps.join(", "));
            }
            for (name, value, source) in &stage.args {
                let _ = writeln!(out, "  ARG {}", arg_line(name, value, source));
            }
            for step in &stage.steps {
                let mark = if step.triggered { " (ONBUILD)" } else { "" };
                let _ = writeln!(
                    out,
                    "  {:>4}  {}{mark}",
                    step.instruction.line,
                    summary(&step.instruction)
                );
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "\nwarning: {warning}");
        }
        out
    }
}

fn arg_line(name: &str, value: &Option<String>, source: &ArgSource) -> String {
    let from = match source {
        ArgSource::BuildArg => "--build-arg",
        ArgSource::Default => "default",
        ArgSource::Global => "global",
        ArgSource::Platform => "platform",
        ArgSource::Unset => "unset",
    };
    match value {
        Some(v) => format!("{name}={v:?}  ({from})"),
        None => format!("{name}  ({from})"),
    }
}

/// One line per step, with its expanded arguments.
pub fn summary(i: &Instruction) -> String {
    let mut out = i.keyword.as_str().to_string();
    for f in &i.flags {
        match &f.value {
            Some(v) => out.push_str(&format!(" --{}={v}", f.name)),
            None => out.push_str(&format!(" --{}", f.name)),
        }
    }
    let command = |c: &Command| match c {
        Command::Exec(argv) => format!(" {}", serde_json::to_string(argv).unwrap_or_default()),
        Command::Shell(s) => format!(" {s}"),
    };
    out.push_str(&match &i.args {
        Args::From { image, stage } => format!(
            " {image}{}",
            stage
                .as_ref()
                .map(|s| format!(" AS {s}"))
                .unwrap_or_default()
        ),
        Args::Command(c) => command(c),
        Args::Shell(argv) => format!(" {}", serde_json::to_string(argv).unwrap_or_default()),
        Args::Pairs(pairs) => pairs
            .iter()
            .map(|p| format!(" {}={:?}", p.key, p.value))
            .collect(),
        Args::Arg(decls) => decls
            .iter()
            .map(|d| match &d.default {
                Some(v) => format!(" {}={v:?}", d.name),
                None => format!(" {}", d.name),
            })
            .collect(),
        Args::Paths {
            sources,
            destination,
            ..
        } => format!(" {} {destination}", sources.join(" ")),
        Args::List(items) => format!(" {}", items.join(" ")),
        Args::Text(t) => format!(" {t}"),
        Args::Onbuild(inner) => format!(" {}", summary(inner)),
        Args::Healthcheck(None) => " NONE".into(),
        Args::Healthcheck(Some(c)) => format!(" CMD{}", command(c)),
    });
    out
}

#[cfg(test)]
mod tests;
