//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`: the manifests whose `subject` is
//! `digest`, as an OCI image index, answered from the index kept at manifest PUT.

use axum::{
    body::Body,
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};
use kiln_store::{Digest, Index, media_type::OCI_INDEX};

use super::{ApiError, Registry};

pub async fn list(
    registry: &Registry,
    name: &str,
    digest: &str,
    request: Request<Body>,
) -> Result<Response, Response> {
    let subject: Digest = digest
        .parse()
        .map_err(|e: kiln_store::Error| ApiError::DigestInvalid(e.to_string()))?;
    let wanted = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("artifactType="))
            .map(|v| {
                v.replace("%2F", "/")
                    .replace("%2B", "+")
                    .replace("%2f", "/")
                    .replace("%2b", "+")
            })
    });
    let mut manifests = registry
        .storage
        .referrers(name, &subject)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(wanted) = &wanted {
        manifests.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
    }
    let index = Index {
        manifests,
        ..Index::default()
    };
    let mut response = (
        [(header::CONTENT_TYPE, OCI_INDEX)],
        kiln_store::spec::to_json(&index),
    )
        .into_response();
    if wanted.is_some() {
        response
            .headers_mut()
            .insert("oci-filters-applied", super::header_value("artifactType"));
    }
    Ok(response)
}
