//! The registry client: one `Client` per command, talking OCI Distribution to any registry
//! (kiln's, CNCF Distribution, a hosted one with token auth). It finds the scheme,
//! answers Basic and Bearer challenges from `~/.docker/config.json`, and maps every
//! failure to an error a user can act on. `Repository` holds the per-repository calls.

mod auth;
mod bodies;
mod challenge;
mod credentials;
mod error;
mod known_blobs;
mod origin;
mod repository;
pub mod retry;
mod timeouts;
mod upload;

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

use reqwest::{RequestBuilder, Response, StatusCode, Url, header};

pub use auth::Access;
use auth::HostAuth;
pub use bodies::{ERROR_LIMIT, TOKEN_LIMIT, failure};
pub use challenge::Challenge;
pub use credentials::{Credentials, DockerConfig};
pub use error::{ClientError, Result, check_blob};
pub use known_blobs::KnownBlobs;
use origin::Origin;
pub use repository::{BlobBody, ManifestResponse, OnBytes, PushOutcome, Repository, UploadStart};
pub use timeouts::MIN_SPEED;

/// Docker Hub's API lives on another host than the name users type.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Registries (`host` or `host:port`) reached without TLS verification: HTTPS when
    /// they answer it, plain HTTP otherwise. localhost and 127.0.0.0/8 always are, as in
    /// docker.
    pub insecure: Vec<String>,
    /// Verify TLS even for localhost and 127.0.0.0/8 (skopeo's `--tls-verify`).
    pub verify_loopback: bool,
    /// Extra PEM roots, on top of the system's.
    pub ca_certs: Vec<PathBuf>,
    /// The docker-style credentials file.
    pub auth_file: PathBuf,
    /// Blobs larger than this are uploaded in chunks of this size, and a chunk that
    /// breaks is resumed from where the registry says it stopped.
    pub chunk_size: u64,
    /// Attempts per blob (and per chunk) before a transfer gives up.
    pub attempts: u32,
    /// How long a connection (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// The longest a request may go without progress: its body not taken, no answer, no
    /// byte of the answer's body; a body moving slower than `MIN_SPEED` over this much
    /// waiting is stalled too.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            verify_loopback: false,
            ca_certs: Vec::new(),
            auth_file: DockerConfig::default_path(),
            chunk_size: 128 << 20,
            attempts: 4,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

pub struct Client {
    /// Built on first use: loading the system's roots costs ~0.1 s, which a command that
    /// only talks to a local registry should not pay.
    verified: std::sync::OnceLock<reqwest::Client>,
    ca_certs: Vec<reqwest::Certificate>,
    unverified: reqwest::Client,
    options: ClientOptions,
    config: DockerConfig,
    hosts: Mutex<HashMap<String, HostState>>,
}

#[derive(Default)]
struct HostState {
    /// `https://host:port` or `http://host:port`, found on first contact.
    base: Option<String>,
    auth: HostAuth,
}

/// Registries listed as insecure in `$XDG_CONFIG_HOME/kiln/registries.toml` (else
/// `~/.config/kiln/registries.toml`): `insecure = ["registry.lan:5000"]`.
pub fn configured_insecure() -> Result<Vec<String>> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    match dir {
        Some(dir) => read_insecure(&dir.join("kiln/registries.toml")),
        None => Ok(Vec::new()),
    }
}

fn read_insecure(path: &std::path::Path) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ClientError::io(format!("reading {}", path.display()), e)),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RegistriesFile {
        #[serde(default)]
        insecure: Vec<String>,
    }
    let file: RegistriesFile = toml::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
    Ok(file.insecure)
}

/// The registry host that serves a reference's domain.
pub fn api_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => DOCKER_HUB_HOST,
        other => other,
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client> {
        let mut ca_certs = Vec::new();
        for path in &options.ca_certs {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::io(format!("reading {}", path.display()), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Usage(format!("{} holds no PEM certificate: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Usage(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            ca_certs.extend(certs);
        }
        let config = DockerConfig::load(&options.auth_file)?;
        let unverified = base_builder(&options)
            .danger_accept_invalid_certs(true)
            .tls_built_in_root_certs(false);
        Ok(Client {
            verified: std::sync::OnceLock::new(),
            ca_certs,
            unverified: build(unverified)?,
            options,
            config,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Use these credentials for `host` in this process (as `kiln login` checks them
    /// before saving), whatever the credentials file says.
    pub fn set_credentials(&mut self, host: &str, credentials: &Credentials) {
        self.config.set(host, credentials);
    }

    pub fn credentials(&self, host: &str) -> Option<Credentials> {
        self.config.get(host)
    }

    /// Is this host reached without TLS verification (docker's "insecure registry")?
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        let loopback = name == "localhost" || name == "::1" || name.starts_with("127.");
        (loopback && !self.options.verify_loopback)
            || self.options.insecure.iter().any(|h| h == host || h == name)
    }

    fn http(&self, host: &str) -> Result<&reqwest::Client> {
        if self.is_insecure(host) {
            return Ok(&self.unverified);
        }
        if let Some(client) = self.verified.get() {
            return Ok(client);
        }
        let mut builder = base_builder(&self.options);
        for cert in &self.ca_certs {
            builder = builder.add_root_certificate(cert.clone());
        }
        let client = build(builder)?;
        Ok(self.verified.get_or_init(|| client))
    }

    /// `https://host` — or, for an insecure registry that does not speak TLS, `http://host`.
    pub async fn base(&self, host: &str) -> Result<String> {
        if let Some(base) = self.host_state(host, |s| s.base.clone()) {
            return Ok(base);
        }
        let https = format!("https://{host}");
        let base = if self.is_insecure(host) {
            // Docker's rule: try TLS (unverified), fall back to plain HTTP. A TLS handshake
            // that times out falls back too (a plain HTTP server may wait for a request line
            // that a ClientHello never ends); an answer that never comes is an error.
            let probe = self.unverified.get(format!("{https}/v2/")).send();
            let bound = self.options.connect_timeout + self.options.read_timeout;
            match tokio::time::timeout(bound, probe).await {
                Ok(Ok(_)) => https,
                Ok(Err(e)) if e.is_connect() && !is_refused(&e) => format!("http://{host}"),
                Ok(Err(e)) => return Err(ClientError::transport(host, &e)),
                Err(_) => {
                    return Err(ClientError::Timeout {
                        host: host.to_string(),
                        detail: "no answer to GET /v2/ (--connect-timeout, --read-timeout)".into(),
                    });
                }
            }
        } else {
            https
        };
        self.host_state(host, |s| s.base = Some(base.clone()));
        Ok(base)
    }

    fn host_state<T>(&self, host: &str, f: impl FnOnce(&mut HostState) -> T) -> T {
        let mut hosts = self.hosts.lock().expect("host table lock");
        f(hosts.entry(host.to_string()).or_default())
    }

    /// Send a request built by `build` (called again for the retry, so bodies must be
    /// rebuildable), answering one authentication challenge on the way. `action` names the
    /// request in errors. Credentials go only to `host`'s own origin (see `origin`).
    pub async fn send(
        &self,
        host: &str,
        access: &Access,
        action: &str,
        build: &(dyn Fn(&reqwest::Client, &str) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let base = self.base(host).await?;
        let registry = Origin::of(&Url::parse(&base).map_err(|e| ClientError::Protocol {
            host: host.to_string(),
            action: action.to_string(),
            detail: format!("{base} is not a URL: {e}"),
        })?);
        let http = self.http(host)?;
        let mut challenged = false;
        loop {
            let mut request = build(http, &base)?
                .build()
                .map_err(|e| ClientError::Usage(format!("{action} to {host}: {e}")))?;
            origin::check_scheme(request.url(), host, action)?;
            if registry.holds(request.url())
                && let Some(value) = self.host_state(host, |s| s.auth.header(access))
            {
                let mut value =
                    header::HeaderValue::try_from(value).map_err(|_| ClientError::Protocol {
                        host: host.to_string(),
                        action: action.to_string(),
                        detail: "its token cannot be sent in a header".into(),
                    })?;
                value.set_sensitive(true);
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
            let read = self.options.read_timeout;
            let exchange = timeouts::exchange(http, request, read, host, action);
            let response = origin::tracking_redirects(exchange).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // A 401 from elsewhere (an upload Location, a redirect) is never answered with
            // this registry's credentials, nor with a token from a realm that host names.
            if !registry.holds(response.url()) {
                return Err(ClientError::ForeignCredentials {
                    host: host.to_string(),
                    other: origin::host_of(response.url()),
                    action: action.to_string(),
                });
            }
            if challenged {
                return Ok(response);
            }
            challenged = true;
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            self.answer(host, access, challenge).await?;
        }
    }

    /// Set up what the next request sends: Basic credentials, or a token fetched for
    /// `access` from the challenge's realm.
    async fn answer(&self, host: &str, access: &Access, challenge: Challenge) -> Result<()> {
        let credentials = self.credentials(host);
        match challenge {
            Challenge::Basic { .. } => {
                let Some(credentials) = credentials else {
                    return Err(ClientError::Unauthorized {
                        host: host.to_string(),
                        message: "the registry asks for a user name and password".into(),
                        have_credentials: false,
                    });
                };
                self.host_state(host, |s| s.auth.use_basic(credentials));
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let token = auth::fetch_token(
                    self.http(host)?,
                    self.options.read_timeout,
                    host,
                    &realm,
                    service.as_deref(),
                    &access.scopes(scope.as_deref()),
                    credentials.as_ref(),
                )
                .await?;
                self.host_state(host, |s| s.auth.store_token(access, token));
            }
        }
        Ok(())
    }
}

fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder
        .build()
        .map_err(|e| ClientError::Usage(format!("setting up HTTP: {e}")))
}

fn base_builder(options: &ClientOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .redirect(origin::redirect_policy())
        .tcp_nodelay(true)
}

fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn is_refused(err: &reqwest::Error) -> bool {
    matches!(ClientError::transport("", err), ClientError::Refused { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(insecure: Vec<String>, verify_loopback: bool) -> Client {
        let dir = tempfile::tempdir().unwrap();
        Client::new(ClientOptions {
            insecure,
            verify_loopback,
            auth_file: dir.path().join("config.json"),
            ..ClientOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn listed_and_loopback_registries_are_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.toml");
        std::fs::write(
            &path,
            "insecure = [\"registry.lan:5000\", \"build-cache\"]\n",
        )
        .unwrap();
        let listed = read_insecure(&path).unwrap();
        let c = client(listed, false);
        assert!(c.is_insecure("registry.lan:5000"));
        assert!(
            c.is_insecure("build-cache:443"),
            "a bare host covers its ports"
        );
        assert!(!c.is_insecure("registry.lan:5001"));
        assert!(!c.is_insecure("registry-1.docker.io"));
        assert!(c.is_insecure("localhost:5000") && c.is_insecure("127.0.0.2:80"));
        assert!(c.is_insecure("[::1]:5000"));
        let strict = client(Vec::new(), true);
        assert!(!strict.is_insecure("127.0.0.1:5000"));

        std::fs::write(&path, "insecure = \"not a list\"\n").unwrap();
        let err = read_insecure(&path).unwrap_err().to_string();
        assert!(err.contains("registries.toml"), "{err}");
        assert!(
            read_insecure(&dir.path().join("none.toml"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn docker_hub_is_served_from_registry_1() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
