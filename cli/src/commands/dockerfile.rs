//! `kiln dockerfile parse`: the syntax tree of a Dockerfile, as kiln reads it.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, Result, bail};
use kiln_builder::dockerfile;

/// Read Dockerfiles as kiln (and BuildKit) reads them
#[derive(clap::Subcommand)]
pub enum Command {
    Parse(ParseArgs),
}

/// Show how kiln reads a Dockerfile
///
/// Prints each instruction with its line, flags, arguments and heredocs, before any
/// variable is expanded; parser directives are listed apart. With --json, one JSON
/// document: {"directives": […], "instructions": [{"instruction": "RUN", "line": 3,
/// "flags": […], "shell": "…", "heredocs": […]}, …], "warnings": […]}; ONBUILD holds its
/// instruction under "trigger". A syntax error names file:line:column and exits 1.
///
/// Example:  kiln dockerfile parse --json Dockerfile
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ParseArgs {
    /// The Dockerfile (- for standard input)
    file: PathBuf,

    /// Print JSON instead of one line per instruction
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Parse(args) => parse(args),
    }
}

fn parse(args: ParseArgs) -> Result<()> {
    let (name, text) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        ("-".to_string(), text)
    } else {
        let name = args.file.display().to_string();
        let bytes = std::fs::read(&args.file).with_context(|| format!("reading {name}"))?;
        match String::from_utf8(bytes) {
            Ok(text) => (name, text),
            Err(_) => bail!("{name} is not UTF-8 text"),
        }
    };
    let parsed = match dockerfile::parse(&name, &text) {
        Ok(parsed) => parsed,
        // The error shows the line with a caret: print it as it is, not as a chain.
        Err(e) => bail!("{e}"),
    };
    for warning in &parsed.warnings {
        eprintln!("kiln: warning: {warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&parsed.to_json())?);
        return Ok(());
    }
    for d in &parsed.directives {
        println!("{:>4}  # {}={}", d.line, d.name, d.value);
    }
    for i in &parsed.instructions {
        println!("{:>4}  {}", i.line, i.summary());
        for h in &i.heredocs {
            let lines = h.content.lines().count();
            println!("      <<{} ({lines} lines)", h.name);
        }
    }
    Ok(())
}
