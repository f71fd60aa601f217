//! `ApiError`: every failure the API reports, mapped in one place to its HTTP status and the
//! OCI error JSON (`{"errors":[{"code","message","detail"}]}`). An internal error's detail
//! (a storage error, often naming a server path) goes to the log under the request's id;
//! the client gets that id and nothing else.

use std::borrow::Cow;

use crate::{
    storage::StorageError,
    wire::{ErrorCode, ErrorEnvelope},
};
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

#[derive(Debug)]
pub enum ApiError {
    BlobUnknown(String),
    BlobUploadInvalid(String),
    BlobUploadUnknown(String),
    DigestInvalid(String),
    ManifestBlobUnknown(String),
    ManifestInvalid(String),
    ManifestUnknown(String),
    NameInvalid(String),
    /// 404: a repository that holds nothing.
    NameUnknown(String),
    /// 404 for a path that is no API endpoint: the OCI JSON body all errors carry.
    NoRoute(String),
    /// 400: `n` above what one page may hold (Distribution's code, and its limit).
    PaginationNumberInvalid(String),
    SizeInvalid(String),
    TagInvalid(String),
    Unsupported(String),
    /// 416 with the upload's current state, so the client can resume.
    RangeNotSatisfiable {
        location: String,
        size: u64,
        detail: String,
    },
    /// 416 for a blob `GET` whose `Range` lies outside the blob of `size` bytes.
    BlobRangeInvalid {
        size: u64,
        detail: String,
    },
    /// 429: too many failed password checks from one address; retry after that many seconds.
    TooManyRequests {
        retry_after: u64,
    },
    /// 500. The detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode, &'static str, Cow<'_, str>) {
        use ApiError::*;
        match self {
            BlobUnknown(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::BlobUnknown,
                "blob unknown to registry",
                d.into(),
            ),
            BlobUploadInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::BlobUploadInvalid,
                "blob upload invalid",
                d.into(),
            ),
            BlobUploadUnknown(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::BlobUploadUnknown,
                "blob upload unknown to registry",
                d.into(),
            ),
            DigestInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::DigestInvalid,
                "provided digest did not match uploaded content",
                d.into(),
            ),
            ManifestBlobUnknown(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestBlobUnknown,
                "manifest references a blob unknown to registry",
                d.into(),
            ),
            ManifestInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestInvalid,
                "manifest invalid",
                d.into(),
            ),
            ManifestUnknown(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::ManifestUnknown,
                "manifest unknown",
                d.into(),
            ),
            NameInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::NameInvalid,
                "invalid repository name",
                d.into(),
            ),
            NameUnknown(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::NameUnknown,
                "repository name not known to registry",
                d.into(),
            ),
            NoRoute(d) => (
                StatusCode::NOT_FOUND,
                ErrorCode::Unsupported,
                "no such API endpoint",
                d.into(),
            ),
            PaginationNumberInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::PaginationNumberInvalid,
                "invalid number of results requested",
                d.into(),
            ),
            SizeInvalid(d) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::SizeInvalid,
                "provided length did not match content length",
                d.into(),
            ),
            TagInvalid(d) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::TagInvalid,
                "manifest tag did not match URI",
                d.into(),
            ),
            Unsupported(d) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "the operation is unsupported",
                d.into(),
            ),
            RangeNotSatisfiable { detail, .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::BlobUploadInvalid,
                "chunk out of order or of the wrong length",
                detail.into(),
            ),
            BlobRangeInvalid { detail, .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::Unsupported,
                "requested range not satisfiable",
                detail.into(),
            ),
            TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                "too many requests",
                format!(
                    "too many failed password checks from this address; retry in {retry_after} s"
                )
                .into(),
            ),
            // The cause stays in the log: `into_response` writes it there under a request id.
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unknown,
                "internal error",
                "".into(),
            ),
        }
    }

    /// Map a storage error for an operation on `what` (a blob, an upload, a manifest).
    pub fn storage(e: StorageError, not_found: impl FnOnce(String) -> ApiError) -> ApiError {
        match e {
            StorageError::NotFound(what) => not_found(what),
            StorageError::DigestInvalid { expected, actual } => {
                ApiError::DigestInvalid(format!("expected {expected}, got {actual}"))
            }
            StorageError::Body(e) => ApiError::BlobUploadInvalid(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// So that `?` turns an `ApiError` into the response of a handler returning
/// `Result<Response, Response>`.
impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        e.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, mut detail) = self.parts();
        if let ApiError::Internal(cause) = &self {
            let id = super::request_id::current();
            eprintln!("request {id}: internal error: {cause}");
            detail = format!("request {id}; the server log has the cause").into();
        }
        let body = ErrorEnvelope::one(code, message, &detail).to_json();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let ApiError::BlobRangeInvalid { size, .. } = &self {
            headers.insert(
                "content-range",
                super::header_value(&format!("bytes */{size}")),
            );
        }
        if let ApiError::RangeNotSatisfiable { location, size, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(location) {
                headers.insert("location", v);
            }
            headers.insert("range", super::range_header(*size));
        }
        if let ApiError::TooManyRequests { retry_after } = &self {
            headers.insert("retry-after", HeaderValue::from(*retry_after));
        }
        (status, headers, body).into_response()
    }
}
