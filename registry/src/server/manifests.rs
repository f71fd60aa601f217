//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<tag|digest>`. A PUT is
//! read up to 4 MiB here and checked and stored by `services::manifests`.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt;
use kiln_store::Digest;

use super::{ApiError, Registry, body_stream, header_value};
use crate::{
    services::manifests::{self, ManifestError, ManifestReference},
    storage::{Claim, StorageError},
    wire::{MANIFEST_LIMIT, bare_media_type},
};

enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(reference: &str) -> Result<Reference, ApiError> {
    if reference.contains(':') {
        return reference
            .parse()
            .map(Reference::Digest)
            .map_err(|e: kiln_store::Error| ApiError::DigestInvalid(e.to_string()));
    }
    kiln_store::validate_tag(reference)
        .map(|_| Reference::Tag(reference.to_string()))
        .map_err(ApiError::TagInvalid)
}

pub async fn handle(
    registry: &Registry,
    name: &str,
    reference: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let parsed = parse_reference(reference);
    match *request.method() {
        // A tag that breaks the grammar names no manifest that could exist: for a read
        // that is "not here" (404 MANIFEST_UNKNOWN, as the conformance suite asks), not a
        // bad request; a PUT still gets 400 TAG_INVALID. A malformed digest stays 400.
        Method::GET | Method::HEAD => {
            if let Err(ApiError::TagInvalid(detail)) = parsed {
                return Err(ApiError::ManifestUnknown(format!(
                    "{name}:{reference} (not a valid tag: {detail})"
                ))
                .into());
            }
            parsed?;
            let accept = request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| bare_media_type(t).to_string())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>();
            get(
                registry,
                name,
                reference,
                request.method() == Method::HEAD,
                &accept,
            )
            .await
        }
        Method::PUT => put(registry, name, parsed?, request).await,
        Method::DELETE => delete(registry, name, parsed?).await,
        _ => Err(
            ApiError::Unsupported(format!("{} on a manifest", request.method())).into_response(),
        ),
    }
}

fn unknown(e: StorageError) -> Response {
    ApiError::storage(e, ApiError::ManifestUnknown).into_response()
}

async fn get(
    registry: &Registry,
    name: &str,
    reference: &str,
    head: bool,
    accept: &[String],
) -> Result<Response, Response> {
    // A HEAD by digest tells the client the manifest exists (it may then name it in an
    // index): claim one that is there against garbage collection, then read it again.
    if head
        && let Ok(digest) = reference.parse::<Digest>()
        && registry.storage.get_manifest(name, reference).await.is_ok()
        && registry
            .storage
            .claim_revision(name, &digest)
            .await
            .map_err(unknown)?
            == Claim::Collecting
    {
        return Err(ApiError::ManifestUnknown(format!("{name}@{digest}")).into());
    }
    let m = registry
        .storage
        .get_manifest(name, reference)
        .await
        .map_err(unknown)?;
    // Manifests are served as stored, never converted: a client that accepts only other
    // types gets MANIFEST_UNKNOWN, as from Distribution, rather than bytes it cannot read.
    let acceptable = accept.is_empty()
        || accept
            .iter()
            .any(|t| t == "*/*" || t == "application/*" || *t == m.media_type);
    if !acceptable {
        return Err(ApiError::ManifestUnknown(format!(
            "{name}:{reference} is a {}, which the Accept header does not list",
            m.media_type
        ))
        .into());
    }
    let mut response = if head {
        Body::empty().into_response()
    } else {
        Body::from(m.bytes.clone()).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header_value(&m.media_type));
    h.insert(
        header::CONTENT_LENGTH,
        header_value(&m.bytes.len().to_string()),
    );
    h.insert("docker-content-digest", header_value(&m.digest.to_string()));
    Ok(response)
}

async fn read_limited(request: Request<Body>) -> Result<Bytes, Response> {
    let mut body = body_stream(request);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::ManifestInvalid(e.to_string()).into_response())?;
        if out.len() + chunk.len() > MANIFEST_LIMIT {
            return Err(ApiError::SizeInvalid(format!(
                "manifests are limited to {MANIFEST_LIMIT} bytes"
            ))
            .into_response());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

// PUT /v2/<name>/manifests/<reference>
// Content-Type: application/vnd.oci.image.manifest.v1+json
// -> 201 Created, Location, Docker-Content-Digest (and OCI-Subject for a referrer)
async fn put(
    registry: &Registry,
    name: &str,
    reference: Reference,
    request: Request<Body>,
) -> Result<Response, Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| bare_media_type(v).to_string());
    let bytes = read_limited(request).await?;
    let reference = match reference {
        Reference::Tag(t) => ManifestReference::Tag(t),
        Reference::Digest(d) => ManifestReference::Digest(d),
    };
    let stored = manifests::put_manifest(
        &registry.storage,
        name,
        bytes,
        content_type.as_deref(),
        &reference,
    )
    .await
    .map_err(|e| match e {
        ManifestError::Invalid(detail) => ApiError::ManifestInvalid(detail),
        ManifestError::BlobUnknown(d) => ApiError::ManifestBlobUnknown(d.to_string()),
        e @ ManifestError::DigestMismatch { .. } => ApiError::DigestInvalid(e.to_string()),
        ManifestError::Storage(e) => ApiError::storage(e, ApiError::ManifestUnknown),
    })?;
    let digest = stored.digest;
    let mut response = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response();
    if let Some(subject) = stored.subject {
        response
            .headers_mut()
            .insert("oci-subject", header_value(&subject.to_string()));
    }
    Ok(response)
}

async fn delete(
    registry: &Registry,
    name: &str,
    reference: Reference,
) -> Result<Response, Response> {
    match reference {
        Reference::Digest(d) => registry
            .storage
            .delete_manifest(name, &d)
            .await
            .map_err(unknown)?,
        Reference::Tag(t) => registry
            .storage
            .delete_tag(name, &t)
            .await
            .map_err(unknown)?,
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
