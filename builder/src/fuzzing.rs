//! One entry point that drives the whole Dockerfile frontend with arbitrary input, for
//! the fuzz target (`fuzz/`) and for the test that replays its corpus on stable.

use std::collections::BTreeMap;

use crate::{
    context::Dockerignore,
    dockerfile,
    plan::{NoImages, PlanOptions, plan},
    shell,
};

/// Parse, plan (with and without build args and a target), expand every line as a word,
/// and read it as a .dockerignore. Results are thrown away: only panics matter.
pub fn exercise(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = dockerfile::parse("fuzz", &text) {
        let _ = parsed.to_json();
        let _ = plan(&parsed, "fuzz", &PlanOptions::default(), &NoImages);
        let options = PlanOptions {
            build_args: BTreeMap::from([("A".to_string(), "1 2".to_string())]),
            target: Some("a".into()),
            ..PlanOptions::default()
        };
        if let Ok(p) = plan(&parsed, "fuzz", &options, &NoImages) {
            let _ = p.outline();
            let _ = p.outline_json();
        }
    }
    let env: &[(&str, &str)] = &[("A", "x y"), ("EMPTY", "")];
    for line in text.lines().take(64) {
        let _ = shell::expand(line, &env, '\\');
        let _ = shell::expand(line, &env, '`');
    }
    let ignore = Dockerignore::parse(&text);
    for line in text.lines().take(16) {
        let _ = ignore.is_excluded(line);
    }
}
