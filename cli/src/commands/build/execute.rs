//! `kiln build` proper: check the options, plan, fetch missing base images, solve with the
//! local worker (store, snapshots, sandbox, cache), store the image under its names.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, anyhow, bail};
use kiln_builder::{
    cache::CacheIndex,
    context::Dockerignore,
    plan::{Base, Plan, plan},
    snapshot::{SnapshotOptions, SnapshotStore},
    solve::{Clock, Format, LocalWorker, Network, SolveOptions, solve, store_image},
};
use kiln_registry::copy::transport::Transport;
use kiln_store::{
    Compression, ImageStore, Platform, Reference, UnpackMode, UnpackOptions, looks_like_tar,
    open_tar_stream, sniff, unpack_tar,
};

use super::{
    Args, StoreImages,
    display::{Display, Mode},
    parse_dockerfile, plan_options,
};
use crate::commands::{
    open_store,
    transfer::{PlatformFlags, TransferFlags, run_copy},
};

/// Set by SIGINT or SIGTERM: the build stops before its next step. (A running step's
/// sandbox gets the terminal's SIGINT itself and kills its processes.)
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Catch SIGINT and SIGTERM so that the build unwinds (unmounts, removes its scratch
/// directories) instead of dying where it stands. Handlers do not survive exec: the
/// sandbox helper and the step's processes start with the default actions.
fn catch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

struct Choices {
    mode: Mode,
    network: Network,
    format: Format,
    compression: Compression,
    names: Vec<Reference>,
    labels: Vec<(String, String)>,
}

/// Every option checked before anything is read or written.
fn choices(args: &Args) -> Result<Choices> {
    let mode = match (args.quiet, Mode::parse(&args.progress)) {
        (true, _) => Mode::Quiet,
        (false, Some(m)) => m,
        (false, None) => bail!(
            "--progress {}: expected auto, tty, plain or quiet",
            args.progress
        ),
    };
    let network = Network::parse(&args.network)
        .ok_or_else(|| anyhow!("--network {}: expected default, host or none", args.network))?;
    let format = match args.format.as_str() {
        "oci" => Format::Oci,
        "docker" => Format::Docker,
        other => bail!("--format {other}: expected oci or docker"),
    };
    let compression = match args.compress.as_str() {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => bail!("--compress {other}: expected gzip or zstd"),
    };
    if format == Format::Docker && compression == Compression::Zstd {
        bail!("--format docker holds gzip layers only: use --compress gzip, or --format oci");
    }
    if let Some(p) = &args.platform {
        let wanted = Platform::parse(p)?;
        let host = Platform::host();
        if !wanted.matches(&host) {
            bail!(
                "--platform {p}: kiln builds for this machine's platform only ({}/{}); \
                 building for another one needs emulation, which kiln does not do",
                host.os,
                host.architecture
            );
        }
    }
    let names = args
        .tag
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("-t {t}")))
        .collect::<Result<Vec<_>>>()?;
    let labels = args
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow!("--label {l:?}: expected KEY=VALUE")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Choices {
        mode,
        network,
        format,
        compression,
        names,
        labels,
    })
}

pub fn build(root: &Path, args: &Args) -> Result<()> {
    let choices = choices(args)?;
    // `kiln build -`: the context (or a Dockerfile alone) on standard input.
    let stdin_context = if args.context == Path::new("-") {
        Some(context_from_stdin(root, args)?)
    } else {
        None
    };
    let args: &Args = match &stdin_context {
        Some((_dir, args)) => args,
        None => args,
    };
    if !args.context.is_dir() {
        bail!(
            "the build context {} does not exist or is not a directory",
            args.context.display()
        );
    }
    let (file, parsed) = parse_dockerfile(args)?;
    let options = plan_options(args)?;
    let store = open_store(root)?;
    // Layers a step stores stay unreferenced until the image is tagged: keep `kiln prune`
    // from collecting them meanwhile.
    let _gc = store.gc_lock(false)?;
    let mut display = Display::new(choices.mode);

    let mut puller = |name: &str| -> Result<(), String> {
        pull(&store, name, args, choices.mode == Mode::Quiet).map_err(|e| format!("{e:#}"))
    };
    let images = StoreImages(Some(store.clone()));
    let mut planned = plan(&parsed, &file, &options, &images)?;
    // Bases first, so that their ONBUILD triggers are planned too.
    let mut fetched = false;
    for name in base_images(&planned) {
        if args.pull || store.resolve(&name).is_err() {
            display.note(&format!("pulling {name}"));
            puller(&name).map_err(|e| anyhow!("base image {name}: {e}"))?;
            fetched = true;
        }
    }
    if fetched {
        planned = plan(&parsed, &file, &options, &images)?;
    }
    for warning in parsed.warnings.iter().chain(&planned.warnings) {
        eprintln!("kiln: warning: {warning}");
    }

    let snapshots = SnapshotStore::open(root, SnapshotOptions::from_env())?;
    // What a build killed with SIGKILL left: its mounts and scratch directories.
    snapshots.cleanup_stale()?;
    let cache = CacheIndex::open(root)
        .with_context(|| format!("opening the layer cache in {}", root.display()))?;
    let dockerfile = args.file.as_deref().filter(|f| *f != Path::new("-"));
    let ignore = Dockerignore::for_build(&args.context, dockerfile)
        .with_context(|| format!("reading the .dockerignore of {}", args.context.display()))?;
    let exe = std::env::current_exe().context("finding the kiln binary")?;
    let mut worker = LocalWorker::new(
        &store,
        &snapshots,
        exe,
        args.context.clone(),
        ignore,
        choices.compression,
        false,
        &mut puller,
    );
    worker.stop = Some(&STOP);
    // ADD's URLs wait as long as a registry would.
    worker
        .downloads
        .set_timeouts(args.registry.connect_timeout, args.registry.read_timeout);
    worker.quiet = choices.mode == Mode::Quiet;
    catch_signals();
    let solve_options = SolveOptions {
        no_cache: args.no_cache,
        network: choices.network,
    };
    let clock = Clock::from_env();
    let mut state = solve(
        &planned,
        &mut worker,
        Some(&cache),
        &clock,
        &solve_options,
        &mut display,
    )
    .map_err(|e| {
        let mut text = if e.line == 0 {
            e.message.clone()
        } else {
            let located = parsed.error_at(&file, (e.line, e.line), "", e.message.clone());
            located.to_string().trim_end().to_string()
        };
        if !e.output.is_empty() {
            text.push_str("\nthe last lines it printed:");
            for line in &e.output {
                text.push_str(&format!("\n  {line}"));
            }
        }
        anyhow!(text)
    })?;
    if STOP.load(Ordering::SeqCst) {
        bail!("the build was interrupted");
    }
    if !choices.labels.is_empty() {
        let config = state.config.config.get_or_insert_with(Default::default);
        let labels = config.labels.get_or_insert_with(Default::default);
        for (k, v) in &choices.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    let stored =
        store_image(&store, &state, choices.format, &choices.names).map_err(|e| anyhow!(e))?;
    display.note(&format!("writing image {}", stored.id));
    for name in &choices.names {
        display.note(&format!("naming to {name}"));
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, stored.id.to_string())
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if choices.mode == Mode::Quiet {
        println!("{}", stored.id);
    }
    Ok(())
}

/// `kiln build -`: standard input holds a tar of the context (unpacked into a temporary
/// directory under the store, refusing entries that leave it) or a Dockerfile alone (the
/// context is then an empty directory). The directory is removed when the build ends.
fn context_from_stdin(root: &Path, args: &Args) -> Result<(tempfile::TempDir, Args)> {
    if args.file.as_deref() == Some(Path::new("-")) {
        bail!("the context and the Dockerfile cannot both come from standard input (-f - with -)");
    }
    let staging = root.join("tmp");
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(&staging)
        .with_context(|| format!("creating a context directory in {}", staging.display()))?;
    let context = dir.path().join("context");
    std::fs::create_dir(&context)?;
    let stdin = std::io::stdin();
    // `input` reads the whole input again, the sniffed prefix included.
    let (prefix, input) = sniff(stdin).context("reading the context from standard input")?;
    let compressed =
        prefix.starts_with(&[0x1f, 0x8b]) || prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let mut args = args.clone();
    if compressed || looks_like_tar(&prefix) {
        let (_, tar) = open_tar_stream(input, "the context on standard input")?;
        unpack_tar(
            tar,
            &context,
            &UnpackOptions::new(UnpackMode::Applied),
            "the context on standard input",
        )?;
        let inside = args.file.clone().unwrap_or_else(|| "Dockerfile".into());
        // As docker: -f names a file inside the context tar.
        args.file = Some(context.join(&inside));
        args.dockerfile_name = Some(format!("{} (from the context on stdin)", inside.display()));
    } else {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut { input }, &mut text)
            .context("reading the Dockerfile from standard input")?;
        let file = dir.path().join("Dockerfile");
        std::fs::write(&file, text)?;
        args.file = Some(file);
        args.dockerfile_name = Some("Dockerfile (stdin)".into());
    }
    args.context = context;
    Ok((dir, args))
}

/// The images the needed stages start from.
fn base_images(planned: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in &planned.needed {
        if let Base::Image(name) = &planned.stages[*i].base
            && !out.contains(name)
        {
            out.push(name.clone());
        }
    }
    out
}

/// `kiln pull NAME`, with the build's registry flags.
fn pull(store: &ImageStore, name: &str, args: &Args, quiet: bool) -> Result<()> {
    let reference = Reference::parse(name)?;
    let flags = TransferFlags {
        registry: args.registry.clone(),
        jobs: 4,
        chunk_size: 128 << 20,
        quiet,
    };
    let platform = PlatformFlags {
        platform: None,
        all_platforms: false,
    };
    run_copy(
        store.clone(),
        &Transport::Registry(reference),
        &Transport::Store(String::new()),
        &flags,
        &platform,
    )?;
    Ok(())
}
