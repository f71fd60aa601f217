//! Blobs: `HEAD`/`GET /v2/<name>/blobs/<digest>` (with `Range`), `DELETE`.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use kiln_store::Digest;

use super::{ApiError, Registry, header_value};
use crate::storage::Claim;

pub async fn handle(
    registry: &Registry,
    name: &str,
    digest: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let digest: Digest = digest
        .parse()
        .map_err(|e: kiln_store::Error| ApiError::DigestInvalid(e.to_string()).into_response())?;
    let storage = &registry.storage;
    let unknown = || ApiError::BlobUnknown(format!("{name}@{digest}")).into_response();
    let linked = storage
        .blob_linked(name, &digest)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()).into_response())?;
    if !linked {
        return Err(unknown());
    }
    // A HEAD 200 tells a pushing client it may skip the upload and name the blob in its
    // manifest: claim it against garbage collection (after the link check, so unknown
    // digests leave no marker), deny it while collected, and look for it after the claim.
    if request.method() == Method::HEAD
        && storage
            .claim_blob(&digest)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()).into_response())?
            == Claim::Collecting
    {
        return Err(unknown());
    }
    match *request.method() {
        Method::DELETE => {
            storage
                .unlink_blob(name, &digest)
                .await
                .map_err(|e| ApiError::storage(e, ApiError::BlobUnknown).into_response())?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Method::HEAD => {
            let size = storage
                .blob_size(&digest)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()).into_response())?
                .ok_or_else(unknown)?;
            Ok((
                [
                    (header::CONTENT_LENGTH, size.to_string()),
                    (header::CONTENT_TYPE, "application/octet-stream".into()),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest.to_string(),
                    ),
                ],
                Body::empty(),
            )
                .into_response())
        }
        Method::GET => get(registry, &digest, request).await,
        _ => Err(ApiError::Unsupported(format!("{} on a blob", request.method())).into_response()),
    }
}

async fn get(
    registry: &Registry,
    digest: &Digest,
    request: Request<Body>,
) -> Result<Response, Response> {
    let storage = &registry.storage;
    let size = storage
        .blob_size(digest)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()).into_response())?
        .ok_or_else(|| ApiError::BlobUnknown(digest.to_string()).into_response())?;
    let range = match request.headers().get(header::RANGE) {
        Some(value) => Some(
            parse_range(value.to_str().unwrap_or(""), size).ok_or_else(|| {
                ApiError::BlobRangeInvalid {
                    size,
                    detail: format!(
                        "Range {:?} is not one range inside the blob's {size} bytes",
                        value.to_str().unwrap_or("")
                    ),
                }
                .into_response()
            })?,
        ),
        None => None,
    };
    let (_, stream) = storage
        .get_blob(digest, range.clone())
        .await
        .map_err(|e| ApiError::storage(e, ApiError::BlobUnknown).into_response())?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header_value("application/octet-stream"),
    );
    headers.insert("docker-content-digest", header_value(&digest.to_string()));
    headers.insert(header::ACCEPT_RANGES, header_value("bytes"));
    match range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_LENGTH,
                header_value(&(r.end - r.start).to_string()),
            );
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
            );
        }
        None => {
            headers.insert(header::CONTENT_LENGTH, header_value(&size.to_string()));
        }
    }
    Ok(response)
}

/// `bytes=start-end`, `bytes=start-`, `bytes=-suffix`; one range, inside the blob.
fn parse_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, size.checked_sub(1)?),
        (s, e) => (
            s.parse().ok()?,
            e.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some(start..end + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges() {
        use super::parse_range;
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
