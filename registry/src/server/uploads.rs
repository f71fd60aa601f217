//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, or
//! cross-repository `?mount=&from=`), and on `/v2/<name>/blobs/uploads/<id>`: `PATCH`
//! (a chunk, `Content-Range` checked), `PUT ?digest=` (finish), `GET` (status), `DELETE`.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use kiln_store::Digest;

use super::{ApiError, Registry, body_stream, header_value, range_header};
use crate::storage::{Claim, StorageError, UploadSession};

fn query(request: &Request<Body>) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Query values here are digests and repository names: only `%3A` (`:`) and `%2F` (`/`)
/// appear encoded in practice, but decode any `%XX`.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(Ok(b)) = hex.map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn digest_param(value: &str) -> Result<Digest, ApiError> {
    value
        .parse()
        .map_err(|e: kiln_store::Error| ApiError::DigestInvalid(e.to_string()))
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

fn session_response(status: StatusCode, name: &str, session: &UploadSession) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/blobs/uploads/{}", session.id)),
    );
    h.insert(header::RANGE, range_header(session.size));
    h.insert("docker-upload-uuid", header_value(&session.id));
    h.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

fn internal(e: StorageError) -> Response {
    ApiError::Internal(e.to_string()).into_response()
}

pub async fn start(
    registry: &Registry,
    name: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let storage = &registry.storage;
    let params = query(&request);
    if let Some(mount) = params.get("mount") {
        let digest = digest_param(mount)?;
        // Mount from `from` if it holds the blob; without `from`, from anywhere it exists.
        let available = match params.get("from") {
            Some(from) => storage.blob_linked(from, &digest).await.map_err(internal)?,
            None => storage
                .blob_size(&digest)
                .await
                .map_err(internal)?
                .is_some(),
        };
        // A mount tells the client the blob is here: claim it against garbage collection
        // (only a blob that is there, so unknown digests leave no marker); one being
        // collected is not mountable, and the blob must still be there after the claim.
        let available =
            available && storage.claim_blob(&digest).await.map_err(internal)? == Claim::Held;
        if available
            && storage
                .blob_size(&digest)
                .await
                .map_err(internal)?
                .is_some()
        {
            storage.link_blob(name, &digest).await.map_err(internal)?;
            return Ok(blob_created(name, &digest));
        }
        // Not mountable: the spec says start an ordinary upload instead.
    }
    if let Some(digest) = params.get("digest") {
        let digest = digest_param(digest)?;
        storage
            .put_blob(&digest, body_stream(request))
            .await
            .map_err(|e| ApiError::storage(e, ApiError::BlobUploadUnknown).into_response())?;
        storage.link_blob(name, &digest).await.map_err(internal)?;
        return Ok(blob_created(name, &digest));
    }
    let session = storage.start_upload(name).await.map_err(internal)?;
    Ok(session_response(StatusCode::ACCEPTED, name, &session))
}

pub async fn handle(
    registry: &Registry,
    name: &str,
    id: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let storage = &registry.storage;
    let unknown = |_| ApiError::BlobUploadUnknown(format!("upload {id}"));
    let session = storage
        .upload_status(id)
        .await
        .map_err(|e| ApiError::storage(e, unknown).into_response())?;
    if session.repository != name {
        return Err(
            ApiError::BlobUploadUnknown(format!("upload {id} is not for {name}")).into_response(),
        );
    }
    let location = format!("/v2/{name}/blobs/uploads/{id}");
    let range_error = |e: StorageError| match e {
        StorageError::RangeInvalid { size, .. } => ApiError::RangeNotSatisfiable {
            location: location.clone(),
            size,
        }
        .into_response(),
        other => ApiError::storage(other, unknown).into_response(),
    };
    match *request.method() {
        Method::GET => Ok(session_response(StatusCode::NO_CONTENT, name, &session)),
        Method::DELETE => {
            storage
                .cancel_upload(id)
                .await
                .map_err(|e| ApiError::storage(e, unknown).into_response())?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::PATCH => {
            let start = content_range_start(&request)?;
            let session = storage
                .append_upload(id, start, body_stream(request))
                .await
                .map_err(range_error)?;
            Ok(session_response(StatusCode::ACCEPTED, name, &session))
        }
        Method::PUT => {
            let params = query(&request);
            let digest = digest_param(params.get("digest").map(String::as_str).unwrap_or(""))?;
            let start = content_range_start(&request)?;
            // The final chunk (often the whole blob) comes with the PUT: it streams straight
            // into the blob, after the chunks already received.
            storage
                .finish_upload(id, start, body_stream(request), &digest)
                .await
                .map_err(range_error)?;
            storage.link_blob(name, &digest).await.map_err(internal)?;
            Ok(blob_created(name, &digest))
        }
        _ => {
            Err(ApiError::Unsupported(format!("{} on an upload", request.method())).into_response())
        }
    }
}

/// `Content-Range: <start>-<end>` (the spec's form; `bytes ` prefixed also accepted).
pub(crate) fn content_range_start(request: &Request<Body>) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    let text = text
        .trim()
        .trim_start_matches("bytes")
        .trim()
        .trim_start_matches('=');
    let start = text
        .split_once('-')
        .and_then(|(s, _)| s.trim().parse::<u64>().ok());
    match start {
        Some(s) => Ok(Some(s)),
        None => Err(ApiError::BlobUploadInvalid(format!(
            "bad Content-Range {text:?}"
        ))),
    }
}
