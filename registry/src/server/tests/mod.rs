//! The router in-process, request by request, with its status codes, headers and errors:
//! a shared harness here, the tests by API area beside it.

mod abuse;
mod blobs;
mod conformance;
mod manifests;
mod operations;

use axum::{body::Body, http::Request};
use base64::Engine as _;
use http_body_util::BodyExt;
use kiln_store::Digest;
use tower::ServiceExt;

use super::*;

struct Harness {
    _dir: tempfile::TempDir,
    app: Router,
}

impl Harness {
    fn new() -> Harness {
        Self::with_auth(AuthConfig::default())
    }

    fn with_auth(auth: AuthConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let storage = RegistryStorage::local(&dir.path().join("r")).unwrap();
        Harness {
            _dir: dir,
            app: router_with_auth(storage, auth),
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, bytes)
    }

    /// Push a blob monolithically; returns its digest.
    async fn blob(&self, name: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let (status, _, _) = self
            .call(
                "POST",
                &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                &[],
                data,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        d
    }
}

fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

fn manifest(config: &Digest, layers: &[&Digest]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":1}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

/// An htpasswd line for `user:password`, as `htpasswd -Bbn` prints it, at bcrypt `cost`.
fn htpasswd_line(user: &str, password: &str, cost: u32) -> String {
    let hash = bcrypt::hash_with_result(password, cost)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    format!("{user}:{hash}\n")
}

fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
