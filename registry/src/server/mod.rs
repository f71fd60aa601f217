//! The OCI Distribution HTTP server. One fallback handler takes every request, `dispatch`
//! reads the path from the right, and thin handlers (one file per API area) call storage.
//! Every response carries `Docker-Distribution-API-Version: registry/2.0`.

mod access;
mod auth;
mod blobs;
pub(crate) mod dispatch;
mod error;
mod htpasswd;
mod listing;
mod manifests;
mod metrics;
mod referrers;
mod request_id;
mod throttle;
pub(crate) mod uploads;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

use self::dispatch::{Route, route};
pub use self::{
    access::{Access, may_mount_unnamed},
    auth::{AuthConfig, DEFAULT_FAILURES_PER_MINUTE},
    error::ApiError,
    htpasswd::{Htpasswd, HtpasswdError},
};
use crate::storage::RegistryStorage;

/// What every handler shares: the storage (all registry state lives there) and this
/// process's counters.
#[derive(Debug)]
pub struct Registry {
    pub storage: RegistryStorage,
    pub metrics: metrics::Metrics,
}

pub type AppState = Arc<Registry>;

pub fn router(storage: RegistryStorage) -> Router {
    router_with_auth(storage, AuthConfig::default())
}

pub fn router_with_auth(storage: RegistryStorage, auth: AuthConfig) -> Router {
    let state: AppState = Arc::new(Registry {
        storage,
        metrics: metrics::Metrics::default(),
    });
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/metrics",
            axum::routing::get(|State(registry): State<AppState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    registry.metrics.render(),
                )
            }),
        )
        .fallback(handle)
        .layer(middleware::from_fn_with_state(
            Arc::new(auth::Auth::new(auth)),
            auth::require_auth,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
        .layer(middleware::from_fn(api_version))
        .layer(middleware::from_fn(request_id::assign))
}

/// Count requests, and the body bytes that actually stream in and out (chunked uploads
/// and blob downloads declare no length up front, or not the one that arrives).
async fn count(State(registry): State<AppState>, request: Request, next: Next) -> Response {
    use std::sync::atomic::Ordering::Relaxed;

    use futures::TryStreamExt;

    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let counter = registry.clone();
    let request = request.map(|body| {
        Body::from_stream(body.into_data_stream().inspect_ok(move |chunk| {
            counter
                .metrics
                .bytes_in
                .fetch_add(chunk.len() as u64, Relaxed);
        }))
    });
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::CREATED && metrics::route_label(&path) == "upload" {
        registry.metrics.blobs_stored.fetch_add(1, Relaxed);
    }
    if status == StatusCode::ACCEPTED && method == Method::POST {
        registry.metrics.uploads_started.fetch_add(1, Relaxed);
    }
    registry.metrics.record(&path, &method, status);
    let counter = registry.clone();
    response.map(|body| {
        Body::from_stream(body.into_data_stream().inspect_ok(move |chunk| {
            counter
                .metrics
                .bytes_out
                .fetch_add(chunk.len() as u64, Relaxed);
        }))
    })
}

/// A certificate chain and its private key, PEM files, for HTTPS.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Serve (HTTP, or HTTPS with `tls`) until `shutdown` resolves; requests in flight are
/// finished first.
pub async fn serve(
    listener: TcpListener,
    storage: RegistryStorage,
    auth: AuthConfig,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router_with_auth(storage, auth).layer(middleware::from_fn(access_log));
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
    };
    // One crypto provider for the process; a second install (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key).await?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(service)
        .await
}

async fn api_version(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// One line per request: method, path, status, response bytes, milliseconds, request id.
/// The method is any token a client sends: shown, but cut short.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let bytes = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let id = response
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let method: String = method.as_str().chars().take(16).collect();
    eprintln!(
        "{method} {path} {} {bytes} {}ms {id}",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

async fn handle(State(registry): State<AppState>, request: Request<Body>) -> Response {
    dispatch(&registry, request).await.unwrap_or_else(|e| e)
}

async fn dispatch(registry: &Registry, request: Request<Body>) -> Result<Response, Response> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match route(&path) {
        Route::Base if method == Method::GET || method == Method::HEAD => {
            Ok(([("content-type", "application/json")], "{}").into_response())
        }
        Route::Catalog if method == Method::GET => listing::catalog(registry, request).await,
        Route::Tags { name } if method == Method::GET => {
            listing::tags(registry, valid_name(name)?, request).await
        }
        Route::Referrers { name, digest } if method == Method::GET => {
            referrers::list(registry, valid_name(name)?, digest, request).await
        }
        Route::Manifest { name, reference } => {
            manifests::handle(registry, valid_name(name)?, reference, request).await
        }
        Route::Blob { name, digest } => {
            blobs::handle(registry, valid_name(name)?, digest, request).await
        }
        Route::Uploads { name } if method == Method::POST => {
            uploads::start(registry, valid_name(name)?, request).await
        }
        Route::Upload { name, id } => {
            uploads::handle(registry, valid_name(name)?, id, request).await
        }
        Route::NotFound => Err(ApiError::NoRoute(format!("{method} {path}")).into_response()),
        _ => Err(ApiError::Unsupported(format!("{method} {path}")).into_response()),
    }
}

/// The spec's name grammar, and its 255-character limit.
fn valid_name(name: &str) -> Result<&str, ApiError> {
    let ok = name.len() <= 255 && kiln_store::validate_repository_name(name).is_ok();
    if ok {
        Ok(name)
    } else {
        Err(ApiError::NameInvalid(format!("{name:?}")))
    }
}

pub(crate) fn range_header(size: u64) -> HeaderValue {
    let value = format!("0-{}", size.saturating_sub(1));
    HeaderValue::from_str(&value).expect("digits and a dash")
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("locations and digests are ASCII")
}

/// The request body as a stream of chunks, never collected whole.
pub(crate) fn body_stream(
    request: Request<Body>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin {
    request.into_body().into_data_stream()
}

#[cfg(test)]
mod tests;
