//! `kiln registry serve`: the OCI Distribution registry, on port 5000 by default; and
//! `kiln registry gc`: remove what no tag reaches from a registry's storage.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use kiln_registry::{server, storage::RegistryStorage};

/// Run an OCI registry
#[derive(clap::Subcommand)]
pub enum Command {
    Serve(ServeArgs),
    Gc(GcArgs),
}

/// Remove manifests and blobs that no tag reaches
///
/// Live are tagged manifests, the children of live indexes, referrers of live manifests,
/// and their configs and layers. Nothing younger than --grace is removed, so a push in
/// progress keeps its blobs and the registry can keep serving meanwhile.
///
/// Example:  kiln registry gc --dry-run
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct GcArgs {
    /// Only list what would be removed
    #[arg(long)]
    dry_run: bool,

    /// Keep anything written more recently than this
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    grace: std::time::Duration,

    /// Storage directory [default: $KILN_ROOT/registry]
    #[arg(long = "storage", value_name = "DIR", env = "KILN_REGISTRY_STORAGE")]
    storage: Option<PathBuf>,
}

/// Serve an OCI Distribution registry (push and pull with docker, skopeo, kiln)
///
/// Blobs are stored once however many repositories hold them, verified before they become
/// visible; upload sessions live in storage, so a restart does not lose them. Stops
/// gracefully on SIGTERM or Ctrl-C, finishing requests in flight.
///
/// Example:  kiln registry serve --listen 127.0.0.1:5000
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Settings from a TOML file (keys: listen, storage, htpasswd, allow_anonymous_read,
    /// auth_failures_per_minute, tls_cert, tls_key); flags and environment variables
    /// override it
    #[arg(long, value_name = "FILE", env = "KILN_REGISTRY_CONFIG")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 0.0.0.0:5000]
    #[arg(long, env = "KILN_REGISTRY_LISTEN")]
    listen: Option<SocketAddr>,

    /// Storage directory [default: $KILN_ROOT/registry]
    #[arg(long = "storage", value_name = "DIR", env = "KILN_REGISTRY_STORAGE")]
    storage: Option<PathBuf>,

    /// Require Basic auth from the users of this htpasswd file (bcrypt, `htpasswd -B`)
    #[arg(long, value_name = "FILE", env = "KILN_REGISTRY_HTPASSWD")]
    htpasswd: Option<PathBuf>,

    /// With --htpasswd: let anyone pull; only pushes and deletes need credentials
    #[arg(long)]
    allow_anonymous_read: bool,

    /// With --htpasswd: wrong passwords a client address may send per minute before it
    /// gets 429 Too Many Requests (per TCP peer: behind a proxy all clients share one);
    /// 0 for no limit [default: 10]
    #[arg(long, value_name = "N", env = "KILN_REGISTRY_AUTH_FAILURES_PER_MINUTE")]
    auth_failures_per_minute: Option<u32>,

    /// Serve HTTPS with this certificate chain (PEM)
    // Not `requires = "tls_key"`: the pair may be split between a flag and --config, and
    // clap's usage line for a missing requirement lists unrelated flags as if required.
    #[arg(long, value_name = "FILE", env = "KILN_REGISTRY_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", env = "KILN_REGISTRY_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

pub fn run(root: &Path, command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(root, args),
        Command::Gc(args) => gc(root, args),
    }
}

fn gc(root: &Path, args: GcArgs) -> Result<()> {
    let dir = args.storage.unwrap_or_else(|| root.join("registry"));
    // Opening storage creates it, which serve wants; a collection of a mistyped path
    // would create an empty registry and report that nothing needed removing.
    if !dir.is_dir() {
        anyhow::bail!(
            "no registry storage at {}: the directory does not exist (give --storage DIR, \
             as given to `kiln registry serve`)",
            dir.display()
        );
    }
    let storage = RegistryStorage::local(&dir)
        .with_context(|| format!("opening registry storage at {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime
        .block_on(storage.gc(args.dry_run, args.grace))
        .context("collecting garbage")?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (repo, digest) in &report.manifests {
        println!("{verb} manifest {repo}@{digest}");
    }
    for (digest, size) in &report.blobs {
        println!(
            "{verb} blob {digest} ({})",
            crate::output::human_size(*size)
        );
    }
    println!(
        "{} manifests, {} blobs ({}), {} leftover uploads: {verb}",
        report.manifests.len(),
        report.blobs.len(),
        crate::output::human_size(report.bytes()),
        report.leftovers
    );
    Ok(())
}

/// `--config FILE`: the same settings as the flags.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    storage: Option<PathBuf>,
    htpasswd: Option<PathBuf>,
    allow_anonymous_read: Option<bool>,
    auth_failures_per_minute: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

fn serve(root: &Path, mut args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<ConfigFile>(&text)
                .with_context(|| format!("invalid config {}", path.display()))?
        }
        None => ConfigFile::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5000)));
    args.storage = args.storage.or(file.storage);
    args.htpasswd = args.htpasswd.or(file.htpasswd);
    args.allow_anonymous_read |= file.allow_anonymous_read.unwrap_or(false);
    args.auth_failures_per_minute = args
        .auth_failures_per_minute
        .or(file.auth_failures_per_minute);
    args.tls_cert = args.tls_cert.or(file.tls_cert);
    args.tls_key = args.tls_key.or(file.tls_key);
    if args.allow_anonymous_read && args.htpasswd.is_none() {
        anyhow::bail!("allow_anonymous_read needs htpasswd: without it every request is anonymous");
    }
    match (&args.tls_cert, &args.tls_key) {
        (Some(_), None) => anyhow::bail!(
            "--tls-cert needs --tls-key FILE too (the certificate's private key, PEM)"
        ),
        (None, Some(_)) => {
            anyhow::bail!("--tls-key needs --tls-cert FILE too (the certificate chain, PEM)")
        }
        _ => {}
    }
    let dir = args.storage.unwrap_or_else(|| root.join("registry"));
    let storage = RegistryStorage::local(&dir)
        .with_context(|| format!("opening registry storage at {}", dir.display()))?;
    let auth = server::AuthConfig {
        htpasswd: args
            .htpasswd
            .as_deref()
            .map(server::Htpasswd::load)
            .transpose()?,
        anonymous_read: args.allow_anonymous_read,
        failures_per_minute: args
            .auth_failures_per_minute
            .unwrap_or(server::DEFAULT_FAILURES_PER_MINUTE),
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(server::Tls { cert, key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "kiln registry listening on {addr}, {scheme}, storage {}",
            dir.display()
        );
        server::serve(listener, storage, auth, tls, shutdown_signal())
            .await
            .context("serving")?;
        eprintln!("kiln registry stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
