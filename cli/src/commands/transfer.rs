//! What `pull`, `push` and `copy` share: registry flags, the client, the copy itself.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use kiln_registry::{
    client::{Client, ClientOptions, DockerConfig, KnownBlobs},
    copy::{
        self, Copied, CopyOptions,
        transport::{Context, Transport, open_destination, open_source},
    },
};
use kiln_store::{ImageStore, Platform};

#[derive(clap::Args, Clone)]
pub struct RegistryFlags {
    /// Talk to the registry without TLS verification, over plain HTTP when it has no TLS
    /// (localhost and 127.0.0.0/8 always are; more can be listed in
    /// ~/.config/kiln/registries.toml as `insecure = ["host:port"]`)
    #[arg(long, conflicts_with = "tls_verify")]
    pub insecure: bool,

    /// Require HTTPS with a verified certificate, also for localhost and 127.0.0.0/8
    #[arg(long)]
    pub tls_verify: bool,

    /// Trust this PEM certificate (or bundle) besides the system's roots
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,

    /// Credentials file [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json]
    #[arg(long, value_name = "FILE", env = "KILN_AUTHFILE")]
    pub authfile: Option<PathBuf>,

    /// Give up on connecting to a registry (TCP and TLS) after this long
    #[arg(long, value_name = "DURATION", env = "KILN_CONNECT_TIMEOUT", default_value = "30s",
          value_parser = parse_timeout)]
    pub connect_timeout: Duration,

    /// Give up on a request when nothing moves for this long (no answer, no byte of it,
    /// the upload not taken), or when an answer moves slower than 1 KiB/s over this much
    /// waiting
    #[arg(long, value_name = "DURATION", env = "KILN_READ_TIMEOUT", default_value = "60s",
          value_parser = parse_timeout)]
    pub read_timeout: Duration,
}

/// `30s`, `2m`, `500ms`: humantime's durations, not zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err(format!("{text:?}: a timeout must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{text:?} is not a duration like 30s or 2m: {e}")),
    }
}

#[derive(clap::Args, Clone)]
pub struct TransferFlags {
    #[command(flatten)]
    pub registry: RegistryFlags,

    /// Blobs transferred at the same time
    #[arg(short, long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,

    /// Blobs larger than this are uploaded in chunks of this size, resumed after a break
    #[arg(long, default_value = "128MiB", value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: u64,

    /// Print no progress
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(clap::Args, Clone)]
pub struct PlatformFlags {
    /// Pick this platform from a multi-platform image (os/arch[/variant]) [default: the host]
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
    pub platform: Option<String>,

    /// Keep a multi-platform image whole: the index and every image it lists
    #[arg(long)]
    pub all_platforms: bool,
}

/// `64MiB`, `1GiB`, `512k`, `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    match number.checked_mul(factor) {
        Some(0) | None => Err(format!("{text:?} is not a usable size")),
        Some(n) => Ok(n),
    }
}

pub fn client_options(flags: &RegistryFlags, hosts: &[&str]) -> Result<ClientOptions> {
    let mut insecure = kiln_registry::client::configured_insecure()?;
    if flags.insecure {
        insecure.extend(hosts.iter().map(|h| h.to_string()));
    }
    Ok(ClientOptions {
        insecure,
        verify_loopback: flags.tls_verify,
        ca_certs: flags.ca_cert.clone(),
        auth_file: flags
            .authfile
            .clone()
            .unwrap_or_else(DockerConfig::default_path),
        connect_timeout: flags.connect_timeout,
        read_timeout: flags.read_timeout,
        ..ClientOptions::default()
    })
}

fn registry_host(transport: &Transport) -> Option<String> {
    match transport {
        Transport::Registry(r) => Some(kiln_registry::client::api_host(r.domain()).to_string()),
        _ => None,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Copy `source` to `destination`, with progress on stderr.
pub fn run_copy(
    store: ImageStore,
    source: &Transport,
    destination: &Transport,
    flags: &TransferFlags,
    platform: &PlatformFlags,
) -> Result<Copied> {
    let hosts: Vec<String> = [source, destination]
        .into_iter()
        .filter_map(registry_host)
        .collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut options = client_options(&flags.registry, &hosts)?;
    options.chunk_size = flags.chunk_size;
    let client = Arc::new(Client::new(options)?);
    let copy_options = CopyOptions {
        platform: match &platform.platform {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        },
        all_platforms: platform.all_platforms,
        jobs: flags.jobs.max(1),
        known: Some(KnownBlobs::new(store.root().join("blob-locations"))),
    };
    let ctx = Context { store, client };
    let progress = crate::progress::for_stderr(flags.quiet);
    runtime()?.block_on(async {
        let source = open_source(source, &ctx)?;
        let destination = open_destination(destination, &ctx, source.name.as_ref())?;
        let copied = copy::copy(
            &source.source,
            &destination.destination,
            &copy_options,
            progress,
        )
        .await?;
        destination.finish(&copied)?;
        Ok(copied)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(super::parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(super::parse_timeout("1m"), Ok(Duration::from_secs(60)));
        assert!(super::parse_timeout("0s").is_err());
        assert!(super::parse_timeout("soon").is_err());
    }
}
