//! `ApiError`: every failure the API reports, mapped in one place to its HTTP status and the
//! OCI error JSON (`{"errors":[{"code","message","detail"}]}`).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::storage::StorageError;

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
    SizeInvalid(String),
    TagInvalid(String),
    Unsupported(String),
    /// 416 with the upload's current state, so the client can resume.
    RangeNotSatisfiable {
        location: String,
        size: u64,
    },
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, &str) {
        use ApiError::*;
        match self {
            BlobUnknown(d) => (
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
                d,
            ),
            BlobUploadInvalid(d) => (
                StatusCode::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                "blob upload invalid",
                d,
            ),
            BlobUploadUnknown(d) => (
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
                d,
            ),
            DigestInvalid(d) => (
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                d,
            ),
            ManifestBlobUnknown(d) => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                "manifest references a blob unknown to registry",
                d,
            ),
            ManifestInvalid(d) => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                "manifest invalid",
                d,
            ),
            ManifestUnknown(d) => (
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
                d,
            ),
            NameInvalid(d) => (
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
                d,
            ),
            SizeInvalid(d) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                "provided length did not match content length",
                d,
            ),
            TagInvalid(d) => (
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                "manifest tag did not match URI",
                d,
            ),
            Unsupported(d) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "the operation is unsupported",
                d,
            ),
            RangeNotSatisfiable { .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                "chunk out of order",
                "",
            ),
            Internal(d) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "internal error",
                d,
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
        let (status, code, message, detail) = self.parts();
        let body = json!({"errors": [{"code": code, "message": message, "detail": detail}]});
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let ApiError::RangeNotSatisfiable { location, size } = &self {
            if let Ok(v) = HeaderValue::from_str(location) {
                headers.insert("location", v);
            }
            headers.insert("range", super::range_header(*size));
        }
        (status, headers, body.to_string()).into_response()
    }
}
