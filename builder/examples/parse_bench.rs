//! Parse + plan timing for `bench/dockerfile.sh`: a generated 2,000-line Dockerfile and
//! the whole `fixtures/dockerfiles` corpus, against the `parse-dockerfile` crate (parse
//! only: it has no planner) in the same run. Prints a markdown table.

use std::{fs, path::PathBuf, time::Instant};

use kiln_builder::{
    dockerfile,
    plan::{NoImages, PlanOptions, plan},
};

/// Multi-stage, continuations, heredocs, mounts, ARG/ENV expansion: 2,000 lines.
fn large() -> String {
    let mut out =
        String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\nARG VERSION=1.0\n");
    let mut stage = 0;
    while out.lines().count() < 2000 {
        out.push_str(&format!("FROM ${{BASE}} AS s{stage}\nARG VERSION\nENV APP_HOME=/opt/app{stage} V=${{VERSION}}\nWORKDIR $APP_HOME\n"));
        if stage > 0 {
            out.push_str(&format!("COPY --from=s{} /opt /opt\n", stage - 1));
        }
        out.push_str("RUN --mount=type=cache,target=/var/cache/apt \\\n    apt-get update \\\n    # packages\n    && apt-get install -y curl git \\\n    && rm -rf /var/lib/apt/lists/*\n");
        out.push_str("RUN <<EOF\nset -e\necho building $V\nmake -j4\nEOF\n");
        out.push_str(&format!("LABEL stage=s{stage} version=\"${{V}}\"\nEXPOSE 80{:02}\nCOPY [\"src\", \"$APP_HOME/src\"]\n", stage % 100));
        stage += 1;
    }
    out.push_str("CMD [\"/opt/app0/run\"]\n");
    out
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

/// Median seconds of `runs` calls of `f`.
fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn ours(text: &str) {
    let parsed = dockerfile::parse("Dockerfile", text).expect("the benchmark input parses");
    plan(&parsed, "Dockerfile", &PlanOptions::default(), &NoImages).expect("and plans");
}

fn theirs(text: &str) -> bool {
    parse_dockerfile::parse(text).is_ok()
}

fn main() {
    let runs = 101;
    let large = large();
    let corpus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dockerfiles");
    let mut corpus: Vec<String> = fs::read_dir(&corpus_dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("Dockerfile"))
        .filter(|p| p.is_file())
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    corpus.sort();
    let readable: Vec<&String> = corpus.iter().filter(|t| theirs(t)).collect();

    let ours_large = time(runs, || ours(&large));
    let ours_large_parse = time(runs, || {
        dockerfile::parse("Dockerfile", &large).unwrap();
    });
    let theirs_large = time(runs, || assert!(theirs(&large)));
    let ours_corpus = time(runs, || corpus.iter().for_each(|t| ours(t)));
    let ours_readable = time(runs, || readable.iter().for_each(|t| ours(t)));
    let theirs_readable = time(runs, || readable.iter().for_each(|t| assert!(theirs(t))));

    let ms = |s: f64| format!("{:.3}", s * 1e3);
    println!("| input | kiln parse+plan ms | parse-dockerfile parse ms | ratio (theirs/ours) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {} lines, {} stages | {} | {} | {:.2} |",
        large.lines().count(),
        large.matches("\nFROM ").count(),
        ms(ours_large),
        ms(theirs_large),
        theirs_large / ours_large
    );
    println!(
        "| same, kiln parse only | {} | {} | {:.2} |",
        ms(ours_large_parse),
        ms(theirs_large),
        theirs_large / ours_large_parse
    );
    println!(
        "| corpus, the {} files parse-dockerfile reads | {} | {} | {:.2} |",
        readable.len(),
        ms(ours_readable),
        ms(theirs_readable),
        theirs_readable / ours_readable
    );
    println!(
        "| corpus, all {} files | {} | - | - |",
        corpus.len(),
        ms(ours_corpus)
    );
}
