//! Listings, in lexical order and paginated with `n`, `last` and a `Link` to the next page:
//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`. A catalog page holds at most
//! [`CATALOG_PAGE_LIMIT`] names; a tag list of a repository that holds nothing is 404.

use axum::{
    body::Body,
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{ApiError, Registry};
use crate::wire::{CATALOG_PAGE_LIMIT, Catalog, TagList};

/// `n` and `last` from the query string.
fn page_params(request: &Request<Body>) -> (Option<usize>, Option<String>) {
    let mut n = None;
    let mut last = None;
    for kv in request.uri().query().unwrap_or("").split('&') {
        match kv.split_once('=') {
            Some(("n", v)) => n = v.parse().ok(),
            Some(("last", v)) => last = Some(v.to_string()),
            _ => {}
        }
    }
    (n, last)
}

/// The page after `last`, at most `n` long, and a `Link` header when more follow.
fn respond(
    all: Vec<String>,
    request: &Request<Body>,
    path: &str,
    body: impl FnOnce(&[String]) -> serde_json::Value,
) -> Response {
    let (n, last) = page_params(request);
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let (page, more) = match n {
        Some(n) if n < after.len() => (after[..n].to_vec(), true),
        _ => (after, false),
    };
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        body(&page).to_string(),
    )
        .into_response();
    if more && let Some(last) = page.last() {
        let link = format!(
            "<{path}?n={}&last={last}>; rel=\"next\"",
            n.unwrap_or_default()
        );
        response
            .headers_mut()
            .insert(header::LINK, super::header_value(&link));
    }
    response
}

pub async fn tags(
    registry: &Registry,
    name: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let all = registry
        .storage
        .tags(name)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // No tags: an empty list if the repository holds anything, else it is unknown.
    if all.is_empty()
        && !registry
            .storage
            .repository_exists(name)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    {
        return Err(ApiError::NameUnknown(name.to_string()).into());
    }
    let path = format!("/v2/{name}/tags/list");
    Ok(respond(all, &request, &path, |page| {
        json!(TagList::new(name, page))
    }))
}

pub async fn catalog(registry: &Registry, request: Request<Body>) -> Result<Response, Response> {
    if let (Some(n), _) = page_params(&request)
        && n > CATALOG_PAGE_LIMIT
    {
        return Err(ApiError::PaginationNumberInvalid(format!(
            "n={n}; a catalog page holds at most {CATALOG_PAGE_LIMIT} names"
        ))
        .into());
    }
    let all = registry
        .storage
        .repositories()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(respond(all, &request, "/v2/_catalog", |page| {
        json!(Catalog::new(page))
    }))
}
