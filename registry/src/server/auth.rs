//! The Basic-auth layer: credentials checked against an `Htpasswd`, a
//! `WWW-Authenticate: Basic` challenge on 401 as docker and skopeo expect, optionally
//! anonymous pulls, and a 429 for an address that keeps sending wrong passwords.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;

use super::{ApiError, htpasswd::Htpasswd, throttle::PasswordThrottle};
use crate::wire::{ErrorCode, ErrorEnvelope};

/// Password checks per minute a client address may spend on credentials not yet known to
/// be right, unless configured otherwise.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;

/// The auth settings of a server.
#[derive(Debug)]
pub struct AuthConfig {
    pub htpasswd: Option<Htpasswd>,
    pub anonymous_read: bool,
    /// Failed password checks a client address may make per minute (all at once, if it
    /// has made none for a minute) before it gets 429; 0 for no limit. Credentials once
    /// found right cost nothing after, so in practice only wrong ones count.
    pub failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            htpasswd: None,
            anonymous_read: false,
            failures_per_minute: DEFAULT_FAILURES_PER_MINUTE,
        }
    }
}

/// What the layer keeps between requests.
#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    throttle: Option<PasswordThrottle>,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Auth {
        let throttle = PasswordThrottle::new(config.failures_per_minute);
        Auth { config, throttle }
    }
}

pub async fn require_auth(
    State(auth): State<std::sync::Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(htpasswd) = &auth.config.htpasswd else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    // Liveness and metrics stay open for probes; everything under /v2 is guarded.
    if !path.starts_with("/v2") {
        return next.run(request).await;
    }
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if read && auth.config.anonymous_read {
        return next.run(request).await;
    }
    let credentials = basic_credentials(request.headers());
    let authorised = match credentials.as_ref().and_then(|c| c.split_once(':')) {
        None => false,
        Some((user, password)) if htpasswd.known_good(user, password) => true,
        Some((user, password)) => {
            if let Some(throttle) = &auth.throttle
                && let Err(wait) = throttle.spend(client_address(&request))
            {
                return ApiError::TooManyRequests {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
                .into_response();
            }
            htpasswd.check(user, password).await
        }
    };
    if authorised {
        return next.run(request).await;
    }
    let body = ErrorEnvelope::one(
        ErrorCode::Unauthorized,
        "authentication required",
        if credentials.is_some() {
            "invalid username or password"
        } else {
            ""
        },
    );
    let mut response = (StatusCode::UNAUTHORIZED, body.to_json()).into_response();
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

/// `user:password` from `Authorization: Basic <base64>`. The scheme is case-insensitive
/// and may be followed by several spaces (RFC 9110, 11.1 and 11.4), as Distribution takes it.
fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The TCP peer (served with connect info); in-process callers without one share a budget.
fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}
