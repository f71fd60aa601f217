//! Progress of blob transfers: a bar per blob on a terminal, one plain line per finished
//! blob otherwise (CI logs), nothing with `--quiet`.

use std::{
    collections::HashMap,
    io::IsTerminal,
    sync::{Arc, Mutex},
};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kiln_registry::copy::{BlobOutcome, Progress, Quiet};
use kiln_store::Digest;

use crate::output::human_size;

pub fn for_stderr(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines)
    }
}

fn describe(digest: &Digest, outcome: &BlobOutcome) -> String {
    let short = &digest.hex()[..12];
    match outcome {
        BlobOutcome::Copied { bytes, seconds } => {
            format!(
                "{short}: copied {} in {seconds:.2}s{}",
                human_size(*bytes),
                rate(*bytes, *seconds)
            )
        }
        BlobOutcome::Exists => format!("{short}: already there"),
        BlobOutcome::Mounted { from } => format!("{short}: mounted from {from}"),
    }
}

/// ` (12.5MB/s)`, or nothing for a blob too small or too quick for a rate to mean
/// anything (a config of 1 kB does not move at "0 MB/s").
fn rate(bytes: u64, seconds: f64) -> String {
    if bytes < 1_000_000 || seconds < 0.01 {
        return String::new();
    }
    format!(" ({}/s)", human_size((bytes as f64 / seconds) as u64))
}

struct Lines;

impl Progress for Lines {
    fn started(&self, _: &Digest, _: u64) {}
    fn advanced(&self, _: &Digest, _: u64) {}
    fn finished(&self, digest: &Digest, outcome: &BlobOutcome) {
        eprintln!("{}", describe(digest, outcome));
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn started(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(digest.hex()[..12].to_string());
        self.bars.lock().expect("bars").insert(digest.clone(), bar);
    }

    fn advanced(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("bars").get(digest) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, digest: &Digest, outcome: &BlobOutcome) {
        if let Some(bar) = self.bars.lock().expect("bars").remove(digest) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(describe(digest, outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blobs_show_no_rate() {
        let digest = Digest::of(b"config");
        let small = BlobOutcome::Copied {
            bytes: 1500,
            seconds: 0.2,
        };
        let line = describe(&digest, &small);
        assert!(line.ends_with("copied 1.5kB in 0.20s"), "{line}");
        let big = BlobOutcome::Copied {
            bytes: 50_000_000,
            seconds: 2.0,
        };
        let line = describe(&digest, &big);
        assert!(line.ends_with("copied 50MB in 2.00s (25MB/s)"), "{line}");
    }
}
