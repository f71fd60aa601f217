//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, or
//! cross-repository `?mount=[&from=]`), and on `/v2/<name>/blobs/uploads/<id>`: `PATCH`
//! (a chunk; its `Content-Range` must start where the upload ends and span exactly the
//! body, else 416), `PUT ?digest=` (finish), `GET` (status), `DELETE`.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use kiln_store::Digest;

use super::{
    ApiError, Registry,
    access::{Access, may_mount_unnamed},
    body_stream, header_value, range_header,
};
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
        let access = Access::of(&request);
        // Mount from `from` if it holds the blob and the caller may read it; without
        // `from` (the spec's automatic content discovery), from any repository the
        // caller may read that holds it.
        let available = match params.get("from") {
            Some(from) => {
                access.may_read(from)
                    && storage.blob_linked(from, &digest).await.map_err(internal)?
            }
            None => may_mount_unnamed(storage, &access, &digest)
                .await
                .map_err(internal)?,
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
    // Only a PATCH or PUT carries a chunk whose range matters.
    let carries_chunk = matches!(*request.method(), Method::PATCH | Method::PUT);
    let range = if carries_chunk {
        content_range(&request).map_err(|detail| ApiError::RangeNotSatisfiable {
            location: location.clone(),
            size: session.size,
            detail,
        })?
    } else {
        None
    };
    // Set when the body is not as long as its Content-Range says: the storage saw a body
    // error and kept nothing of it; the client hears 416, not 400.
    let wrong_length = Arc::new(AtomicBool::new(false));
    let range_error = |e: StorageError| match e {
        StorageError::RangeInvalid { start, size } => ApiError::RangeNotSatisfiable {
            location: location.clone(),
            size,
            detail: format!("the chunk starts at byte {start}, the upload holds {size} bytes"),
        }
        .into_response(),
        StorageError::Body(detail) if wrong_length.load(Ordering::Relaxed) => {
            ApiError::RangeNotSatisfiable {
                location: location.clone(),
                size: session.size,
                detail,
            }
            .into_response()
        }
        other => ApiError::storage(other, unknown).into_response(),
    };
    let start = range.map(|(start, _)| start);
    let length = range.map(|(start, end)| end - start + 1);
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
            let body = exact_length(body_stream(request), length, wrong_length.clone());
            let session = storage
                .append_upload(id, start, body)
                .await
                .map_err(range_error)?;
            Ok(session_response(StatusCode::ACCEPTED, name, &session))
        }
        Method::PUT => {
            let params = query(&request);
            let digest = digest_param(params.get("digest").map(String::as_str).unwrap_or(""))?;
            // The final chunk (often the whole blob) comes with the PUT: it streams straight
            // into the blob, after the chunks already received.
            let body = exact_length(body_stream(request), length, wrong_length.clone());
            storage
                .finish_upload(id, start, body, &digest)
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

/// `Content-Range: <start>-<end>` (the spec's form; `bytes ` prefixed also accepted):
/// the first and last byte of the chunk, inclusive. `Err` (a 416) when it is not that.
pub(crate) fn content_range(request: &Request<Body>) -> Result<Option<(u64, u64)>, String> {
    let Some(value) = request.headers().get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    let text = text
        .trim()
        .trim_start_matches("bytes")
        .trim()
        .trim_start_matches('=');
    let range = text.split_once('-').and_then(|(s, e)| {
        let start = s.trim().parse::<u64>().ok()?;
        let end = e.trim().parse::<u64>().ok()?;
        (start <= end).then_some((start, end))
    });
    match range {
        Some(range) => Ok(Some(range)),
        None => Err(format!(
            "Content-Range {text:?} is not <first byte>-<last byte>"
        )),
    }
}

/// `body`, failing (and setting `wrong_length`) as soon as it proves longer or shorter
/// than `length` bytes, when a Content-Range declared one. Storage keeps nothing of a
/// body that fails.
fn exact_length<S>(
    body: S,
    length: Option<u64>,
    wrong_length: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, String>> + Unpin + Send + 'static
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static,
{
    let mismatch = move |seen: &str| {
        wrong_length.store(true, Ordering::Relaxed);
        format!(
            "the Content-Range spans {} bytes, the body has {seen}",
            length.unwrap_or_default()
        )
    };
    Box::pin(
        stream::unfold(Some((body, 0u64)), move |state| {
            let mismatch = mismatch.clone();
            async move {
                let (mut body, seen) = state?;
                match body.next().await {
                    Some(Ok(chunk)) => {
                        let seen = seen + chunk.len() as u64;
                        if length.is_some_and(|n| seen > n) {
                            return Some((Err(mismatch("more")), None));
                        }
                        Some((Ok(chunk), Some((body, seen))))
                    }
                    Some(Err(e)) => Some((Err(e.to_string()), None)),
                    None if length.is_some_and(|n| seen != n) => {
                        Some((Err(mismatch(&seen.to_string())), None))
                    }
                    None => None,
                }
            }
        })
        // Storage may poll again after the end (it peeks at the PUT's first piece).
        .fuse(),
    )
}
