//! Output helpers: docker-style sizes and ages, and files written whole or not at all.

use std::{
    io::{self, IsTerminal, Write},
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};
use kiln_store::{DurableFile, Readers};

/// `4.26MB`, as docker prints sizes (decimal units, three significant digits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let decimals = match value {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[unit])
}

/// `3 hours ago`, as docker prints ages.
pub fn human_age(created: Option<&str>) -> String {
    let Some(time) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "N/A".into();
    };
    let age = SystemTime::now()
        .duration_since(time)
        .unwrap_or(Duration::ZERO);
    format!("{} ago", human_duration(age))
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match s {
        0 => "Less than a second".into(),
        1..=59 => plural(s, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(s / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(s / 3600, "hour"),
        172_800..=1_209_599 => plural(s / 86_400, "day"),
        1_209_600..=5_183_999 => plural(s / 604_800, "week"),
        5_184_000..=63_071_999 => plural(s / 2_592_000, "month"),
        _ => plural(s / 31_536_000, "year"),
    }
}

/// Print rows as left-aligned columns separated by three spaces, like docker.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Where a command's archive goes: a `DurableFile` (written under a temporary name and
/// renamed into place only when complete, 0644 less the umask), or stdout (refused on a
/// terminal, as docker does).
pub enum Sink {
    File(DurableFile),
    Stdout(io::Stdout),
}

impl Sink {
    pub fn open(path: Option<&Path>) -> Result<Sink> {
        match path {
            Some(p) if p != Path::new("-") => Ok(Sink::File(
                DurableFile::create(p, Readers::Everyone)
                    .with_context(|| format!("writing {}", p.display()))?,
            )),
            _ => {
                let out = io::stdout();
                if out.is_terminal() {
                    bail!(
                        "refusing to write an archive to a terminal: use -o FILE or redirect stdout"
                    );
                }
                Ok(Sink::Stdout(out))
            }
        }
    }

    pub fn writer(&mut self) -> Box<dyn Write + '_> {
        match self {
            // Buffered already.
            Sink::File(file) => Box::new(file),
            Sink::Stdout(out) => Box::new(io::BufWriter::with_capacity(1 << 20, out.lock())),
        }
    }

    /// Make the file visible under its name, durably.
    pub fn finish(self) -> Result<()> {
        if let Sink::File(file) = self {
            file.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(536_870_912), "537MB");
        assert_eq!(human_size(12_345_678_901), "12.3GB");
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(human_duration(Duration::from_secs(0)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400)), "3 days");
    }
}
