//! `Repository`: the Distribution API calls on one repository of one registry —
//! manifests, blob HEAD/GET, and uploads (monolithic, mounted, or chunked and resumed).

use std::{path::PathBuf, sync::Arc};

use kiln_store::{Descriptor, Digest, Reference};
use reqwest::{RequestBuilder, Response, StatusCode, header};

use super::{
    Access, Client, ClientError, Result, api_host,
    bodies::{failure, read_capped},
    retry,
};
use crate::wire::{MANIFEST_LIMIT, manifest_media_type};

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Called with each piece of a blob as it moves.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Clone)]
pub struct Repository {
    pub(super) client: Arc<Client>,
    pub(super) host: String,
    pub(super) name: String,
}

#[derive(Debug)]
pub struct ManifestResponse {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

/// What a blob upload sends: a local file (can be re-read, so chunked and resumed), or
/// a stream that goes once (from another registry).
pub enum BlobBody {
    File(PathBuf),
    /// The same blob in another repository, read as it is sent and checked on the way.
    Remote(Repository),
}

pub enum UploadStart {
    Mounted,
    Session(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Exists,
    Mounted { from: String },
    Uploaded,
}

impl Repository {
    pub fn new(client: Arc<Client>, reference: &Reference) -> Repository {
        Repository {
            host: api_host(reference.domain()).to_string(),
            name: reference.path().to_string(),
            client,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// `host/name:tag` or `host/name@sha256:…`, for messages.
    pub fn display(&self, reference: &str) -> String {
        let sep = if reference.contains(':') { '@' } else { ':' };
        format!("{}/{}{sep}{reference}", self.host, self.name)
    }

    pub(super) fn url(&self, base: &str, tail: &str) -> String {
        format!("{base}/v2/{}/{tail}", self.name)
    }

    pub(super) async fn call(
        &self,
        access: &Access,
        action: &str,
        what: &str,
        ok: &[StatusCode],
        build: &(dyn Fn(&reqwest::Client, &str) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let response = self.client.send(&self.host, access, action, build).await?;
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        let after = retry::retry_after(&response);
        let error = match failure(&self.host, action, what, response).await {
            ClientError::Unauthorized { host, message, .. } => ClientError::Unauthorized {
                have_credentials: self.client.credentials(&host).is_some(),
                host,
                message,
            },
            other => other,
        };
        Err(match after {
            Some(after) => ClientError::RetryAfter {
                after,
                error: Box::new(error),
            },
            None => error,
        })
    }

    /// `GET /v2/`: is the registry there, and do our credentials open it?
    pub async fn ping(client: &Client, host: &str) -> Result<()> {
        let access = Access::pull("");
        let response = client
            .send(host, &access, "GET /v2/", &|http, base| {
                Ok(http.get(format!("{base}/v2/")))
            })
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(
            match failure(host, "GET /v2/", "the registry API", response).await {
                ClientError::Unauthorized { host, message, .. } => ClientError::Unauthorized {
                    have_credentials: client.credentials(&host).is_some(),
                    host,
                    message,
                },
                other => other,
            },
        )
    }

    /// A manifest or index by tag or digest, read whole (it is small) and checked against
    /// the digest when asked by digest.
    pub async fn manifest(&self, reference: &str) -> Result<ManifestResponse> {
        let what = format!("manifest {}", self.display(reference));
        let tail = format!("manifests/{reference}");
        let response = self
            .call(
                &Access::pull(&self.name),
                &format!("GET {tail}"),
                &what,
                &[StatusCode::OK],
                &|http, base| {
                    Ok(http
                        .get(self.url(base, &tail))
                        .header(header::ACCEPT, ACCEPT_MANIFESTS))
                },
            )
            .await?;
        let declared = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_capped(response, MANIFEST_LIMIT, &self.host, &what).await?;
        // Asked for by digest: check in that digest's algorithm (sha512 too).
        let expected = reference.parse::<Digest>().ok();
        let algorithm = expected
            .as_ref()
            .map_or(Digest::ALGORITHM, Digest::algorithm);
        let digest = Digest::of_with(algorithm, &bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ClientError::DigestMismatch {
                digest: expected,
                origin: self.display(reference),
                actual: digest,
            });
        }
        let media_type = manifest_media_type(&bytes, declared.as_deref())
            .map_err(|e| self.protocol(&what, &e.to_string()))?;
        let descriptor = Descriptor::new(&media_type, digest, bytes.len() as u64);
        Ok(ManifestResponse { descriptor, bytes })
    }

    pub(super) fn protocol(&self, action: &str, detail: &str) -> ClientError {
        ClientError::Protocol {
            host: self.host.clone(),
            action: action.to_string(),
            detail: detail.to_string(),
        }
    }

    pub async fn put_manifest(
        &self,
        reference: &str,
        descriptor: &Descriptor,
        bytes: &[u8],
    ) -> Result<()> {
        let tail = format!("manifests/{reference}");
        let response = self
            .call(
                &Access::push(&self.name),
                &format!("PUT {tail}"),
                &format!("repository {}/{}", self.host, self.name),
                &[StatusCode::CREATED, StatusCode::OK],
                &|http, base| {
                    Ok(http
                        .put(self.url(base, &tail))
                        .header(header::CONTENT_TYPE, &descriptor.media_type)
                        .body(bytes.to_vec()))
                },
            )
            .await?;
        let echoed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        match echoed {
            Some(d) if d != descriptor.digest => Err(self.protocol(
                &format!("PUT {tail}"),
                &format!("the registry stored {d}, not {}", descriptor.digest),
            )),
            _ => Ok(()),
        }
    }

    /// `HEAD` a blob: its size if this repository has it.
    pub async fn blob_size(&self, digest: &Digest, access: &Access) -> Result<Option<u64>> {
        let tail = format!("blobs/{digest}");
        let response = self
            .call(
                access,
                &format!("HEAD {tail}"),
                &format!("blob {digest}"),
                &[StatusCode::OK, StatusCode::NOT_FOUND],
                &|http, base| Ok(http.head(self.url(base, &tail))),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(response.content_length())
    }

    /// `GET` a blob; the caller streams the body and checks its digest.
    pub async fn blob(&self, digest: &Digest) -> Result<Response> {
        let tail = format!("blobs/{digest}");
        self.call(
            &Access::pull(&self.name),
            &format!("GET {tail}"),
            &format!("blob {digest} in {}/{}", self.host, self.name),
            &[StatusCode::OK],
            &|http, base| Ok(http.get(self.url(base, &tail))),
        )
        .await
    }

    pub(super) fn location(&self, response: &Response, action: &str) -> Result<String> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.protocol(action, "no Location header on an upload"))
    }
}
