//! `Metrics`: counters for `GET /metrics` in Prometheus' text format — requests by route,
//! method and status, bytes in and out, uploads started and blobs stored.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::dispatch::{Route, route};

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
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

impl Metrics {
    pub fn record(&self, path: &str, method: &str, status: u16) {
        let key = (route_label(path), method.to_string(), status);
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
