//! `Plan::outline` and `Plan::outline_json`: what `kiln build --print=outline` and
//! `--print=outline-json` print — the target, the ARGs in play and where their values
//! came from, and each needed stage with its base, the stages it needs and its steps.
//! The plan's warnings are not in the text outline; the command prints them on stderr.

use super::{ArgSource, Base, Plan, stage_label};

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
                    step.instruction.summary()
                );
            }
        }
        // Warnings are not part of the outline: the command prints them once, on stderr.
        out
    }
}

impl Plan {
    /// `kiln build --print=outline-json`: all the text outline shows, as JSON (the CLI
    /// adds the build context). Every global ARG is listed, the platform ones included
    /// (`"source": "platform"`); stages are the needed ones in Dockerfile order, and
    /// `needs` and `base.stage` name them by index.
    pub fn outline_json(&self) -> serde_json::Value {
        use serde_json::json;
        let target = &self.stages[self.target];
        let stages: Vec<serde_json::Value> = self
            .needed
            .iter()
            .map(|i| {
                let stage = &self.stages[*i];
                let base = match &stage.base {
                    Base::Scratch => json!({"kind": "scratch"}),
                    Base::Image(image) => json!({"kind": "image", "image": image}),
                    Base::Stage(p) => json!({
                        "kind": "stage", "stage": p, "name": self.stages[*p].name
                    }),
                };
                json!({
                    "index": stage.index,
                    "name": stage.name,
                    "label": stage_label(stage),
                    "line": stage.line,
                    "base": base,
                    "platform": stage.platform,
                    "needs": stage.deps,
                    "args": stage.args.iter().map(arg_json).collect::<Vec<_>>(),
                    "steps": stage.steps.iter().map(|step| {
                        let mut v = step.instruction.to_json();
                        v["triggered"] = step.triggered.into();
                        v
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "target": self.target,
            "target_name": target.name,
            "target_label": stage_label(target),
            "global_args": self.global_args.iter().map(arg_json).collect::<Vec<_>>(),
            "stages": stages,
            "warnings": self.warnings,
        })
    }
}

fn arg_json((name, value, source): &(String, Option<String>, ArgSource)) -> serde_json::Value {
    serde_json::json!({"name": name, "value": value, "source": source_name(source)})
}

/// Where an ARG's value came from, as both outlines name it.
fn source_name(source: &ArgSource) -> &'static str {
    match source {
        ArgSource::BuildArg => "--build-arg",
        ArgSource::Default => "default",
        ArgSource::Global => "global",
        ArgSource::Platform => "platform",
        ArgSource::Unset => "unset",
    }
}

fn arg_line(name: &str, value: &Option<String>, source: &ArgSource) -> String {
    let from = source_name(source);
    match value {
        Some(v) => format!("{name}={v:?}  ({from})"),
        None => format!("{name}  ({from})"),
    }
}
