//! What the helper and the container's first process tell the parent, as JSON lines on the
//! report pipe. The pipe is close-on-exec in the container, so the command never holds it
//! and the parent sees end-of-file once both are gone.

use std::{
    fs::File,
    io::Write,
    mem::ManuallyDrop,
    os::fd::{FromRawFd, RawFd},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::spec::Status;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Mount points created in the root (sent before exec).
    Created(Vec<PathBuf>),
    /// Setup failed; nothing of the command ran.
    Failed(String),
    /// The command ended (sent by the helper after the container is gone).
    Ended(Status),
}

/// Writes one report line. Errors are ignored: a parent that stopped listening has
/// nothing to learn, and the exit status still carries the outcome.
pub(crate) fn send(fd: RawFd, report: &Report) {
    let Ok(mut line) = serde_json::to_vec(report) else {
        return;
    };
    line.push(b'\n');
    // SAFETY: fd is the report pipe, open for this process's lifetime; ManuallyDrop keeps
    // it open after the write.
    let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let _ = file.write_all(&line);
}

/// Reads every report line the parent received; unreadable lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<Report> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_as_lines() {
        let reports = vec![
            Report::Created(vec!["/proc".into(), "/etc/hosts".into()]),
            Report::Failed("pivot_root: Operation not permitted (os error 1)".into()),
            Report::Ended(Status::Signaled(9)),
        ];
        let text: String = reports
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        assert_eq!(parse(&(text + "garbage\n")), reports);
    }
}
