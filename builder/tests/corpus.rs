//! The Dockerfile corpus in `fixtures/dockerfiles/`: every `NN-name/Dockerfile` parses to
//! the tree in its `expected.json` (reviewed by hand when written: `KILN_BLESS=1` rewrites
//! them after a deliberate change) and plans without error; every `errors/*.Dockerfile`
//! fails to parse or to plan at the line, column and with the message in its `.expected`;
//! and where the `parse-dockerfile` crate reads a file, it sees the same instructions in
//! the same order.

use std::{fs, path::PathBuf};

use kiln_builder::{
    dockerfile::{self, Args},
    plan::{NoImages, PlanOptions, plan},
};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dockerfiles")
}

fn cases() -> Vec<(String, PathBuf)> {
    let mut cases: Vec<_> = fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_dockerfile_parses_to_its_expected_tree() {
    let cases = cases();
    assert!(
        cases.len() >= 60,
        "the corpus holds {} Dockerfiles",
        cases.len()
    );
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let text = fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let parsed = match dockerfile::parse("Dockerfile", &text) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let got = serde_json::to_string_pretty(&parsed.to_json()).unwrap() + "\n";
        let expected_path = dir.join("expected.json");
        if bless {
            fs::write(&expected_path, &got).unwrap();
        } else {
            match fs::read_to_string(&expected_path) {
                Ok(expected) if expected == got => {}
                Ok(_) => failures.push(format!(
                    "{name}: the tree differs from expected.json:\n{got}"
                )),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        if let Err(e) = plan(&parsed, "Dockerfile", &PlanOptions::default(), &NoImages) {
            failures.push(format!("{name}: planning failed: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_bad_dockerfile_fails_where_expected() {
    let dir = corpus().join("errors");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} error cases", files.len());
    let mut failures = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let expected = fs::read_to_string(path.with_extension("expected")).unwrap();
        let expected = expected.trim_end();
        // Some mistakes surface only when the words are expanded (an unbalanced quote in a
        // COPY source): those fail in planning, with the same kind of error.
        let failed = dockerfile::parse("Dockerfile", &text).and_then(|parsed| {
            plan(&parsed, "Dockerfile", &PlanOptions::default(), &NoImages).map(|_| ())
        });
        match failed {
            Ok(()) => failures.push(format!(
                "{}: parsed and planned, but should fail",
                path.display()
            )),
            Err(e) => {
                let got = format!("{}:{}: {}", e.line, e.column, e.message);
                if !got.starts_with(expected) {
                    failures.push(format!(
                        "{}: got {got:?}, want {expected:?}",
                        path.display()
                    ));
                }
                // The rendering shows the line and a caret under the column.
                let shown = e.to_string();
                let caret = shown.lines().last().unwrap_or("");
                if caret.find('^') != Some(e.line.to_string().len() + 3 + e.column - 1) {
                    failures.push(format!("{}: caret misplaced:\n{shown}", path.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The instruction keywords in order, ONBUILD's trigger included, as we read them.
fn our_keywords(text: &str) -> Vec<String> {
    let parsed = dockerfile::parse("Dockerfile", text).unwrap();
    parsed
        .instructions
        .iter()
        .map(|i| match &i.args {
            Args::Onbuild(inner) => format!("ONBUILD {}", inner.keyword.as_str()),
            _ => i.keyword.as_str().to_string(),
        })
        .collect()
}

/// The same from parse-dockerfile's JSON.
fn their_keywords(text: &str) -> Option<Vec<String>> {
    let parsed = parse_dockerfile::parse(text).ok()?;
    let json = serde_json::to_value(&parsed).ok()?;
    json["instructions"]
        .as_array()?
        .iter()
        .map(|i| {
            let kind = i["kind"].as_str()?.to_string();
            if kind == "ONBUILD" {
                let inner = i["instruction"]["kind"].as_str()?;
                Some(format!("ONBUILD {inner}"))
            } else {
                Some(kind)
            }
        })
        .collect()
}

/// Files where parse-dockerfile reads differently from BuildKit, and kiln follows BuildKit.
const THEY_DIFFER_FROM_BUILDKIT: &[&str] = &[
    // parse-dockerfile continues a line that ends in a doubled escape; BuildKit ends it.
    "69-doubled-escape-ends-line",
    "70-doubled-backtick-ends-line",
];

#[test]
fn parse_dockerfile_sees_the_same_instructions() {
    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, dir) in cases() {
        if THEY_DIFFER_FROM_BUILDKIT.contains(&name.as_str()) {
            continue;
        }
        let text = fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let Some(theirs) = their_keywords(&text) else {
            continue; // it refuses some files BuildKit reads; only agreement is checked
        };
        compared += 1;
        let ours = our_keywords(&text);
        if ours != theirs {
            failures.push(format!(
                "{name}: ours {ours:?}, parse-dockerfile {theirs:?}"
            ));
        }
    }
    assert!(
        compared >= 40,
        "parse-dockerfile read only {compared} of the corpus"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
