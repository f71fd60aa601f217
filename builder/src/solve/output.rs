//! `StepOutput`: a RUN step's stdout and stderr through one pipe, shown live on kiln's
//! stderr (unless quiet) and remembered by their last lines, which a failure repeats.

use std::{
    collections::VecDeque,
    io::{self, PipeReader, Read, Write},
    os::fd::OwnedFd,
    thread::JoinHandle,
};

/// How many lines a failed step's message repeats.
pub const TAIL_LINES: usize = 10;

pub struct StepOutput {
    reader: JoinHandle<VecDeque<String>>,
}

impl StepOutput {
    /// A pipe whose write end goes to the sandbox; the read end is drained by a thread.
    pub fn start(quiet: bool) -> io::Result<(StepOutput, OwnedFd)> {
        let (reader, writer) = io::pipe()?;
        let reader = std::thread::spawn(move || drain(reader, quiet));
        Ok((StepOutput { reader }, writer.into()))
    }

    /// The last lines, once every writer is gone (the step's processes have ended and the
    /// caller dropped its copy of the write end).
    pub fn finish(self) -> Vec<String> {
        self.reader.join().map(Vec::from).unwrap_or_default()
    }
}

fn drain(mut reader: PipeReader, quiet: bool) -> VecDeque<String> {
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut stderr = io::stderr();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if !quiet {
            let _ = stderr.write_all(&buf[..n]);
        }
        partial.extend_from_slice(&buf[..n]);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            push(&mut tail, &line[..line.len() - 1]);
        }
        // A very long line without a newline is still kept, cut.
        if partial.len() > 4096 {
            let line: Vec<u8> = std::mem::take(&mut partial);
            push(&mut tail, &line);
        }
    }
    if !partial.is_empty() {
        push(&mut tail, &partial);
    }
    tail
}

fn push(tail: &mut VecDeque<String>, line: &[u8]) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    let text = String::from_utf8_lossy(line);
    let text: String = text.chars().take(400).collect();
    tail.push_back(text);
}

#[cfg(test)]
mod tests {
    use std::{fs::File, io::Write};

    use super::{StepOutput, TAIL_LINES};

    #[test]
    fn keeps_the_last_lines() {
        let (output, writer) = StepOutput::start(true).unwrap();
        let mut file = File::from(writer);
        for i in 0..25 {
            writeln!(file, "line {i}").unwrap();
        }
        write!(file, "no newline").unwrap();
        drop(file);
        let tail = output.finish();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.first().unwrap(), "line 16");
        assert_eq!(tail.last().unwrap(), "no newline");
    }
}
