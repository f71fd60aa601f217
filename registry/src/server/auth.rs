//! `Htpasswd` and the Basic-auth layer: users from an htpasswd file of bcrypt entries (as
//! `htpasswd -B` writes them), a `WWW-Authenticate: Basic` challenge on 401 as docker and
//! skopeo expect, and optionally anonymous pulls.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Mutex,
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Entry {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Who may push (and, unless anonymous reads are on, pull).
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256 of "user:password:hash" for credentials already checked: bcrypt is slow by
    /// design and clients send Basic credentials with every request.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| HtpasswdError::Entry {
                path: path.to_string(),
                line: i + 1,
                reason: reason.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !hash.starts_with("$2") {
                return Err(bad("only bcrypt entries are supported (htpasswd -B)"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key: [u8; 32] = Sha256::digest(format!("{user}:{password}:{hash}")).into();
        if self.verified.lock().expect("never poisoned").contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            self.verified.lock().expect("never poisoned").insert(key);
        }
        ok
    }
}

/// The auth settings of a server.
#[derive(Debug, Default)]
pub struct AuthConfig {
    pub htpasswd: Option<Htpasswd>,
    pub anonymous_read: bool,
}

pub async fn require_auth(
    State(auth): State<std::sync::Arc<AuthConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(htpasswd) = &auth.htpasswd else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    // Liveness and metrics stay open for probes; everything under /v2 is guarded.
    if !path.starts_with("/v2") {
        return next.run(request).await;
    }
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if read && auth.anonymous_read {
        return next.run(request).await;
    }
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let authorised = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(user, password)| htpasswd.check(user, password));
    if authorised {
        return next.run(request).await;
    }
    let body = serde_json::json!({"errors": [{
        "code": "UNAUTHORIZED",
        "message": "authentication required",
        "detail": if credentials.is_some() { "invalid username or password" } else { "" },
    }]});
    let mut response = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"kiln registry\""),
    );
    response
}
