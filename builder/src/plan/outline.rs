//! `Plan::outline`: what `kiln build --print=outline` prints — the target, the ARGs in
//! play and where their values came from, and each needed stage with its steps. The
//! plan's warnings are not in it; the command prints them on stderr.

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
