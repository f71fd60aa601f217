//! `Metrics`: counters for `GET /metrics` in Prometheus' text format — requests by route,
//! method and status, bytes in and out, uploads started and blobs stored. Every label comes
//! from a closed set (anything else is `other`), so no request can add a series of its own.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::http::{Method, StatusCode};

use super::dispatch::{Route, route};

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub uploads_started: AtomicU64,
    pub blobs_stored: AtomicU64,
}

/// A label for the API area of a path, so series stay few whatever the names.
pub fn route_label(path: &str) -> &'static str {
    match route(path) {
        Route::Base => "base",
        Route::Catalog => "catalog",
        Route::Tags { .. } => "tags",
        Route::Manifest { .. } => "manifest",
        Route::Blob { .. } => "blob",
        Route::Uploads { .. } | Route::Upload { .. } => "upload",
        Route::Referrers { .. } => "referrers",
        Route::NotFound => match path {
            "/healthz" => "healthz",
            "/metrics" => "metrics",
            _ => "other",
        },
    }
}

/// The method as a label: the ones the API and browsers use, `other` for any name a client
/// makes up (a method is any token, and arrives before authentication).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl Metrics {
    /// Count a response. `status` is a real HTTP status, at most 900 values.
    pub fn record(&self, path: &str, method: &Method, status: StatusCode) {
        let key = (route_label(path), method_label(method), status.as_u16());
        *self
            .requests
            .lock()
            .expect("metrics lock is never poisoned: no panics while held")
            .entry(key)
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kiln_registry_requests_total Requests by API route, method and status.\n",
        );
        out.push_str("# TYPE kiln_registry_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().expect("never poisoned").iter() {
            let _ = writeln!(
                out,
                "kiln_registry_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        for (name, help, value) in [
            (
                "kiln_registry_bytes_received_total",
                "Request body bytes received.",
                &self.bytes_in,
            ),
            (
                "kiln_registry_bytes_sent_total",
                "Response body bytes sent.",
                &self.bytes_out,
            ),
            (
                "kiln_registry_uploads_started_total",
                "Upload sessions started.",
                &self.uploads_started,
            ),
            (
                "kiln_registry_blobs_stored_total",
                "Blobs stored after their digest matched.",
                &self.blobs_stored,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
