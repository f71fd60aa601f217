//! `ClientError`: what went wrong talking to a registry, in words a user can act on.

use kiln_store::Digest;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown registry host {host}: the name does not resolve ({detail})")]
    UnknownHost { host: String, detail: String },

    #[error("cannot connect to {host}: connection refused (is the registry running on that port?)")]
    Refused { host: String },

    #[error("cannot reach {host}: {detail}")]
    Transport { host: String, detail: String },

    #[error("TLS with {host} failed: {problem}")]
    Tls { host: String, problem: String },

    #[error("timed out talking to {host}: {detail}")]
    Timeout { host: String, detail: String },

    #[error("{host} sent too much: {what} is larger than {limit}, kiln stopped reading")]
    TooMuch {
        host: String,
        what: String,
        limit: String,
    },

    #[error(
        "{host} sent kiln to {other} for {action}, and {other} asks for credentials: kiln \
         sends the credentials for {host} only to {host} (and the token service it names)"
    )]
    ForeignCredentials {
        host: String,
        other: String,
        action: String,
    },

    #[error("{host}: authentication required{}: {message}", hint(.have_credentials))]
    Unauthorized {
        host: String,
        message: String,
        have_credentials: bool,
    },

    #[error("{host}: access to {what} denied: {message}")]
    Denied {
        host: String,
        what: String,
        message: String,
    },

    #[error("{what} not found on {host}{}", detail_suffix(.message))]
    NotFound {
        host: String,
        what: String,
        message: String,
    },

    #[error("{host} answered {status} to {action}: {message}")]
    Status {
        host: String,
        action: String,
        status: u16,
        message: String,
    },

    #[error("blob {digest} from {origin} does not match its digest: the bytes hash to {actual}")]
    DigestMismatch {
        digest: Digest,
        origin: String,
        actual: Digest,
    },

    #[error("blob {digest} from {origin} is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        origin: String,
        expected: u64,
        actual: u64,
    },

    #[error("{host} sent an invalid response to {action}: {detail}")]
    Protocol {
        host: String,
        action: String,
        detail: String,
    },

    /// A 429 or 503 whose `Retry-After` says when to come back.
    #[error("{error} (the registry asks to retry after {} s)", .after.as_secs())]
    RetryAfter {
        after: std::time::Duration,
        error: Box<ClientError>,
    },

    #[error("{0}")]
    Usage(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Store(#[from] kiln_store::Error),
}

fn hint(have_credentials: &bool) -> &'static str {
    if *have_credentials {
        " (the stored credentials were refused)"
    } else {
        " (run `kiln login` first)"
    }
}

fn detail_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

impl ClientError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    /// Turn a transport failure into one of the cases a user can act on. reqwest wraps
    /// hyper wraps io; the useful fact (refused, no such host) sits somewhere in the chain.
    pub fn transport(host: &str, err: &reqwest::Error) -> Self {
        let mut chain = String::new();
        let mut refused = false;
        let mut source: Option<&dyn std::error::Error> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                refused = true;
            }
            let text = e.to_string();
            // hyper-util's wrapper says nothing its source does not say better.
            if !chain.contains(&text) && !text.starts_with("client error (") {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&text);
            }
            source = e.source();
        }
        if let Some(found) = blob_check_in(err) {
            return found;
        }
        // After a redirect the failure is the other host's: name it, not the registry.
        let host = super::origin::blamed(host);
        if err.is_connect() && err.is_timeout() {
            return ClientError::Timeout {
                host,
                detail: "no connection within the connect timeout (--connect-timeout)".into(),
            };
        }
        if refused {
            return ClientError::Refused { host };
        }
        if chain.contains("dns error") || chain.contains("failed to lookup address") {
            let detail = chain
                .rsplit(": ")
                .next()
                .unwrap_or("lookup failed")
                .to_string();
            return ClientError::UnknownHost { host, detail };
        }
        if let Some(problem) = tls_problem(&chain) {
            return ClientError::Tls {
                host,
                problem: problem.to_string(),
            };
        }
        // Drop reqwest's "error sending request for url (…)" preamble: the host says it.
        let detail = chain
            .split_once("): ")
            .map_or(chain.as_str(), |(_, rest)| rest)
            .to_string();
        ClientError::Transport { host, detail }
    }

    /// Worth trying again on a fresh connection (a dropped or reset transfer)?
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. }
            | ClientError::Timeout { .. }
            | ClientError::RetryAfter { .. } => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The common TLS failures, from rustls's words (names of its error variants) to what
/// happened and what to do about it.
fn tls_problem(chain: &str) -> Option<&'static str> {
    const PROBLEMS: [(&[&str], &str); 5] = [
        (
            &["CaUsedAsEndEntity"],
            "the server presents a CA certificate as its own (a self-signed CA, \
             basicConstraints CA:TRUE), which TLS clients refuse: sign a server certificate \
             with that CA, naming the host in subjectAltName, and serve that (give kiln the \
             CA with --ca-cert), or use --insecure",
        ),
        (
            &["InvalidContentType", "received corrupt message"],
            "the other end does not speak TLS on that port (a plain HTTP registry?): to use \
             plain HTTP, mark it insecure (--insecure, or insecure = [\"host:port\"] in \
             ~/.config/kiln/registries.toml) and drop --tls-verify; or use its HTTPS port",
        ),
        (
            &["UnknownIssuer"],
            "its certificate is signed by an authority kiln does not trust: give kiln the \
             CA's certificate with --ca-cert FILE (or use --insecure)",
        ),
        (
            &["NotValidForName", "not valid for name"],
            "its certificate does not name the host kiln connected to: use a name listed in \
             the certificate's subjectAltName, or issue a certificate for this one",
        ),
        (
            &["Expired", "certificate expired"],
            "its certificate has expired (or this machine's clock is wrong): renew it",
        ),
    ];
    PROBLEMS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| chain.contains(n)))
        .map(|(_, problem)| *problem)
}

/// A digest or size check that failed inside a request body (a blob streamed from one
/// registry to another), or a timeout inside a response body, comes back wrapped in
/// reqwest's error; find it.
fn blob_check_in(err: &reqwest::Error) -> Option<ClientError> {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        match e.downcast_ref::<ClientError>() {
            Some(ClientError::DigestMismatch {
                digest,
                origin,
                actual,
            }) => {
                return Some(ClientError::DigestMismatch {
                    digest: digest.clone(),
                    origin: origin.clone(),
                    actual: actual.clone(),
                });
            }
            Some(ClientError::SizeMismatch {
                digest,
                origin,
                expected,
                actual,
            }) => {
                return Some(ClientError::SizeMismatch {
                    digest: digest.clone(),
                    origin: origin.clone(),
                    expected: *expected,
                    actual: *actual,
                });
            }
            Some(ClientError::Timeout { host, detail }) => {
                return Some(ClientError::Timeout {
                    host: host.clone(),
                    detail: detail.clone(),
                });
            }
            _ => source = e.source(),
        }
    }
    None
}

/// Do the bytes that arrived match the descriptor they were asked by?
pub fn check_blob(
    expected: &Digest,
    size: u64,
    actual: &Digest,
    actual_size: u64,
    origin: &str,
) -> Result<()> {
    if actual_size != size {
        return Err(ClientError::SizeMismatch {
            digest: expected.clone(),
            origin: origin.to_string(),
            expected: size,
            actual: actual_size,
        });
    }
    if actual != expected {
        return Err(ClientError::DigestMismatch {
            digest: expected.clone(),
            origin: origin.to_string(),
            actual: actual.clone(),
        });
    }
    Ok(())
}
