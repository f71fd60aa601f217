//! Request ids: each request gets one, answered in `X-Request-Id` and written beside what
//! the server logs about it, so that a client's "internal error, request 1f…" leads to
//! the log line that holds the cause (which the client is not shown).

use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// Random per process, so that replicas behind one balancer do not hand out the same ids.
static PROCESS: LazyLock<u32> = LazyLock::new(|| {
    let mut bytes = [0u8; 4];
    // A fixed prefix would only make ids of two replicas collide; never worth failing for.
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
});
static NEXT: AtomicU64 = AtomicU64::new(1);

fn fresh() -> String {
    format!(
        "{:08x}{:08x}",
        *PROCESS,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The id of the request being handled (a fresh one outside any request).
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| fresh())
}

/// Give the request an id for everything it runs, and answer it in `X-Request-Id`.
pub async fn assign(request: Request, next: Next) -> Response {
    let id = fresh();
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    let value = HeaderValue::from_str(&id).expect("hex digits");
    response.headers_mut().insert(HEADER, value);
    response
}
