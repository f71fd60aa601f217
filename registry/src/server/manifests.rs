//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<tag|digest>`. A PUT is
//! checked before it is stored: size (4 MiB), JSON, media type, the digest in the URL, and
//! that every blob (manifest) or child manifest (index) it names is in the repository.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt;
use kiln_store::{
    Descriptor, Digest, Index, Manifest,
    spec::{self, DocumentKind},
};

use super::{ApiError, Registry, body_stream, header_value};
use crate::storage::StorageError;

/// The spec lets registries refuse manifests over 4 MiB; so do we.
pub const MANIFEST_LIMIT: usize = 4 << 20;

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
    let parsed = parse_reference(reference)?;
    match *request.method() {
        Method::GET | Method::HEAD => {
            let accept = request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
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
        Method::PUT => put(registry, name, parsed, request).await,
        Method::DELETE => delete(registry, name, parsed).await,
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
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let bytes = read_limited(request).await?;
    let invalid = |detail: String| ApiError::ManifestInvalid(detail).into_response();

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u32>,
        media_type: Option<String>,
    }
    let head: Head =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if head.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    let media_type = match (&content_type, &head.media_type) {
        (Some(c), Some(m)) if c != m => {
            return Err(invalid(format!("Content-Type {c} but mediaType {m}")));
        }
        (_, Some(m)) => m.clone(),
        (Some(c), None) => c.clone(),
        (None, None) => return Err(invalid("no media type (Content-Type or mediaType)".into())),
    };
    let known = kiln_store::media_type::is_manifest(&media_type)
        || kiln_store::media_type::is_index(&media_type);
    if !known {
        return Err(invalid(format!(
            "unsupported manifest media type {media_type}"
        )));
    }
    let storage = &registry.storage;
    let internal = |e: StorageError| ApiError::Internal(e.to_string()).into_response();
    let referrer;
    match spec::document_kind(&bytes, Some(&media_type), "manifest")
        .map_err(|e| invalid(e.to_string()))?
    {
        DocumentKind::Manifest => {
            let m: Manifest =
                spec::from_json(&bytes, "manifest").map_err(|e| invalid(e.to_string()))?;
            // The spec: an image manifest's artifact type is its artifactType, else its
            // config's media type.
            referrer = m.subject.clone().map(|s| {
                let artifact = m
                    .artifact_type
                    .clone()
                    .unwrap_or(m.config.media_type.clone());
                (s, Some(artifact), m.annotations.clone())
            });
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                // Foreign layers live elsewhere (their `urls`); everything else must be here.
                if blob.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                    continue;
                }
                if !storage
                    .blob_linked(name, &blob.digest)
                    .await
                    .map_err(internal)?
                {
                    return Err(
                        ApiError::ManifestBlobUnknown(blob.digest.to_string()).into_response()
                    );
                }
            }
        }
        DocumentKind::Index => {
            let index: Index =
                spec::from_json(&bytes, "index").map_err(|e| invalid(e.to_string()))?;
            referrer = index
                .subject
                .clone()
                .map(|s| (s, index.artifact_type.clone(), index.annotations.clone()));
            for child in &index.manifests {
                match storage.get_manifest(name, &child.digest.to_string()).await {
                    Ok(_) => {}
                    Err(StorageError::NotFound(_)) => {
                        return Err(
                            ApiError::ManifestBlobUnknown(child.digest.to_string()).into_response()
                        );
                    }
                    Err(e) => return Err(internal(e)),
                }
            }
        }
    }
    let digest = Digest::of(&bytes);
    let tag = match reference {
        Reference::Digest(d) if d != digest => {
            return Err(ApiError::DigestInvalid(format!(
                "the URL says {d}, the manifest is {digest}"
            ))
            .into_response());
        }
        Reference::Digest(_) => None,
        Reference::Tag(t) => Some(t),
    };
    // The referrer entry goes first: it is listed only once the manifest itself exists.
    let subject = match referrer {
        Some((subject, artifact_type, annotations)) => {
            let mut d = Descriptor::new(&media_type, digest.clone(), bytes.len() as u64);
            d.artifact_type = artifact_type;
            d.annotations = annotations;
            storage
                .add_referrer(name, &subject.digest, &d)
                .await
                .map_err(internal)?;
            Some(subject.digest)
        }
        None => None,
    };
    storage
        .put_manifest(name, bytes, &media_type, tag.as_deref())
        .await
        .map_err(internal)?;
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
    if let Some(subject) = subject {
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
