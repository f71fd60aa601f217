//! How a build shows its steps: one line when a step starts and one when it ends (`CACHED`
//! or its time), numbered as BuildKit's plain progress is; `--progress plain` adds the
//! time of day; quiet shows nothing.

use std::time::SystemTime;

use kiln_builder::solve::{Progress, StepEvent, StepStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A terminal or a log: the same lines.
    Auto,
    /// Plain lines with timestamps.
    Plain,
    Quiet,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "auto" | "tty" => Some(Mode::Auto),
            "plain" => Some(Mode::Plain),
            "quiet" => Some(Mode::Quiet),
            _ => None,
        }
    }
}

pub struct Display {
    mode: Mode,
    counter: usize,
}

impl Display {
    pub fn new(mode: Mode) -> Display {
        Display { mode, counter: 0 }
    }

    /// A line of its own (pulls, the final image), numbered like the steps.
    pub fn note(&mut self, text: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        self.counter += 1;
        eprintln!("{}#{} {text}", self.stamp(), self.counter);
    }

    fn stamp(&self) -> String {
        if self.mode != Mode::Plain {
            return String::new();
        }
        format!("{} ", humantime::format_rfc3339_millis(SystemTime::now()))
    }
}

impl Progress for Display {
    fn step(&mut self, e: StepEvent<'_>) {
        if self.mode == Mode::Quiet {
            return;
        }
        let head = format!("[{} {}/{}] {}", e.stage, e.index, e.total, e.text);
        match e.status {
            StepStatus::Started => {
                self.counter += 1;
                eprintln!("{}#{} {head}", self.stamp(), self.counter);
            }
            StepStatus::Cached => eprintln!("{}#{} CACHED", self.stamp(), self.counter),
            StepStatus::Done(took) => eprintln!(
                "{}#{} DONE {:.1}s",
                self.stamp(),
                self.counter,
                took.as_secs_f64()
            ),
        }
    }
}
