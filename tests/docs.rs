//! The README and the architecture page point only at files the repository has: a fresh
//! clone must be able to follow every link (the README once pointed outside it).

use std::path::Path;

/// The targets of the relative Markdown links `[text](target)` in `text`.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
    }
    out
}

#[test]
fn every_relative_link_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["README.md", "docs/architecture.md", "bench/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let base = root.join(doc).parent().unwrap().to_path_buf();
        for target in relative_links(&text) {
            let path = base.join(&target);
            assert!(
                path.exists(),
                "{doc} links to {target}, which does not exist"
            );
            let resolved = path.canonicalize().unwrap();
            assert!(
                resolved.starts_with(root.canonicalize().unwrap()),
                "{doc} links to {target}, outside the repository"
            );
        }
    }
}

/// The packages the README says `tests/run.sh` installs are the ones it installs (the
/// list once left out `tar`).
#[test]
fn the_readme_lists_the_packages_the_tests_install() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = std::fs::read_to_string(root.join("tests/run.sh")).unwrap();
    let installed: Vec<&str> = run
        .lines()
        .find_map(|l| l.strip_prefix("packages=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("tests/run.sh has a packages=(...) line")
        .split_whitespace()
        .collect();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed: Vec<&str> = readme
        .lines()
        .find(|l| l.starts_with("tests/run.sh"))
        .and_then(|l| l.split_once("installs "))
        .and_then(|(_, rest)| rest.split_once(", then"))
        .expect("the README says what tests/run.sh installs")
        .0
        .split_whitespace()
        .collect();
    assert_eq!(listed, installed);
}
