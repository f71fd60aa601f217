//! The `kiln` command line: parses arguments, calls the libraries, prints. Nothing else.

mod commands;
mod output;
mod progress;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Build container images without a daemon, serve them from an OCI registry, \
             and carry them across air gaps as tarballs.",
    propagate_version = true
)]
struct Cli {
    /// Where kiln keeps its images [default: /var/lib/kiln as root, else ~/.local/share/kiln]
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Import(commands::import::Args),
    Export(commands::export::Args),
    Save(commands::save::Args),
    Load(commands::load::Args),
    Images(commands::images::Args),
    Tag(commands::tag::Args),
    Rmi(commands::rmi::Args),
    Inspect(commands::inspect::Args),
    History(commands::history::Args),
    Prune(commands::prune::Args),
    Build(Box<commands::build::Args>),
    Run(commands::run::Args),
    Pull(commands::pull::Args),
    Push(commands::push::Args),
    Copy(commands::copy::Args),
    Login(commands::login::LoginArgs),
    Logout(commands::login::LogoutArgs),
    #[command(subcommand)]
    Registry(commands::registry::Command),
    #[command(subcommand)]
    Dockerfile(commands::dockerfile::Command),
}

fn main() -> ExitCode {
    // The sandbox helper re-executes this binary (`kiln __sandbox-init ...`). It must run
    // before clap and before any thread or tokio runtime exists: it unshares namespaces
    // and forks, which a multithreaded process must not do. Not a clap subcommand, so it
    // never shows in --help.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == kiln_sandbox::INIT_ARG)
    {
        kiln_sandbox::init_main();
    }
    let cli = Cli::parse();
    let root = cli
        .root
        .unwrap_or_else(kiln_store::ImageStore::default_root);
    let result = match cli.command {
        Command::Import(args) => commands::import::run(&root, args),
        Command::Export(args) => commands::export::run(&root, args),
        Command::Save(args) => commands::save::run(&root, args),
        Command::Load(args) => commands::load::run(&root, args),
        Command::Images(args) => commands::images::run(&root, args),
        Command::Tag(args) => commands::tag::run(&root, args),
        Command::Rmi(args) => commands::rmi::run(&root, args),
        Command::Inspect(args) => commands::inspect::run(&root, args),
        Command::History(args) => commands::history::run(&root, args),
        Command::Prune(args) => commands::prune::run(&root, args),
        Command::Build(args) => commands::build::run(&root, *args),
        Command::Run(args) => commands::run::run(&root, args),
        Command::Pull(args) => commands::pull::run(&root, args),
        Command::Push(args) => commands::push::run(&root, args),
        Command::Copy(args) => commands::copy::run(&root, args),
        Command::Login(args) => commands::login::login(args),
        Command::Logout(args) => commands::login::logout(args),
        Command::Registry(command) => commands::registry::run(&root, command),
        Command::Dockerfile(command) => commands::dockerfile::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<commands::run::Exit>().is_some() => {
            let code = err.downcast_ref::<commands::run::Exit>().map_or(1, |e| e.0);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(err) => {
            eprintln!("kiln: error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: ` between them, as `{:#}` prints them, but without a
/// cause its parent already ends with: library errors show their source in their own
/// message (`opening x.tar: No such file or directory`), and anyhow would repeat it.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
