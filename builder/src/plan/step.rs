//! One instruction applied to a stage: its variables expanded where BuildKit expands
//! them (never RUN, CMD or ENTRYPOINT text; flag values yes), ARG and ENV recorded in the
//! stage's scope, and the stages it reads from noted.

use super::{ArgSource, BuildArgs, PlanError, Scope, Stage, Step, stage_label};
use crate::{
    dockerfile::{Args, Flag, Instruction, Keyword, Pair},
    shell::{self, Env},
};

/// Builds an error at (first line, last line) of an instruction, pointing at a word.
pub(super) type ErrorAt<'a> = dyn Fn((usize, usize), &str, String) -> PlanError + 'a;

/// What every step needs besides its stage and instruction.
pub(super) struct Context<'a> {
    pub global: &'a Scope,
    pub build_args: &'a mut BuildArgs,
    /// A stage's index by (lower-case) name.
    pub find: &'a dyn Fn(&str) -> Option<usize>,
    pub err: &'a ErrorAt<'a>,
    pub escape: char,
}

/// Expand `instruction` in `stage` and append it as a step (`triggered`: an ONBUILD
/// trigger of the base).
pub(super) fn apply(
    stage: &mut Stage,
    instruction: &Instruction,
    triggered: bool,
    cx: &mut Context<'_>,
) -> Result<(), PlanError> {
    let expanded = expand_step(stage, instruction, cx)?;
    let args = stage.scope.args().to_vec();
    stage.steps.push(Step {
        instruction: expanded,
        triggered,
        args,
    });
    Ok(())
}

fn expand_step(
    stage: &mut Stage,
    instruction: &Instruction,
    cx: &mut Context<'_>,
) -> Result<Instruction, PlanError> {
    let (global, err, escape, find) = (cx.global, cx.err, cx.escape, cx.find);
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
                let (value, source) = if let Some(v) = cx.build_args.take(&decl.name) {
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
    // COPY and ADD heredocs with an unquoted delimiter expand, quotes kept (BuildKit);
    // RUN's stay as written: the shell expands them.
    if matches!(instruction.keyword, Keyword::Copy | Keyword::Add) {
        for doc in out.heredocs.iter_mut().filter(|h| h.expand) {
            doc.content = shell::expand_heredoc(&doc.content, &stage.scope).map_err(|e| {
                err(
                    lines,
                    &format!("<<{}", doc.name),
                    format!("cannot expand heredoc {}: {}", doc.name, e.message),
                )
            })?;
        }
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
