//! `GET /v2/<name>/tags/list?n=&last=`: tags in lexical order, paginated with a `Link`.

use axum::{
    body::Body,
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{ApiError, Registry};

pub async fn list(
    registry: &Registry,
    name: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let mut n: Option<usize> = None;
    let mut last: Option<String> = None;
    for kv in request.uri().query().unwrap_or("").split('&') {
        match kv.split_once('=') {
            Some(("n", v)) => n = v.parse().ok(),
            Some(("last", v)) => last = Some(v.to_string()),
            _ => {}
        }
    }
    let all = registry
        .storage
        .tags(name)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()).into_response())?;
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let (page, more) = match n {
        Some(n) if n < after.len() => (after[..n].to_vec(), true),
        _ => (after, false),
    };
    let body = json!({"name": name, "tags": page}).to_string();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if more && let Some(last) = page.last() {
        let link = format!(
            "</v2/{name}/tags/list?n={}&last={last}>; rel=\"next\"",
            n.unwrap_or_default()
        );
        response
            .headers_mut()
            .insert(header::LINK, super::header_value(&link));
    }
    Ok(response)
}
