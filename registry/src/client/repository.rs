//! `Repository`: the Distribution API calls on one repository of one registry —
//! manifests, blob HEAD/GET, and uploads (monolithic, mounted, or chunked and resumed).

use std::{
    io::{Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use kiln_store::{Descriptor, Digest, Reference, media_type};
use reqwest::{RequestBuilder, Response, StatusCode, header};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{Access, Client, ClientError, Result, api_host, failure};

/// Registries refuse manifests over 4 MiB; so do we, rather than read without end.
pub const MANIFEST_LIMIT: usize = 4 << 20;

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Bytes of a file go to the socket in pieces this big.
const READ_CHUNK: usize = 1 << 20;

/// Called with each piece of a blob as it moves.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Clone)]
pub struct Repository {
    client: Arc<Client>,
    host: String,
    name: String,
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

    fn url(&self, base: &str, tail: &str) -> String {
        format!("{base}/v2/{}/{tail}", self.name)
    }

    async fn call(
        &self,
        access: &Access,
        action: &str,
        what: &str,
        ok: &[StatusCode],
        build: &(dyn Fn(&reqwest::Client, &str) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let response = self.client.send(&self.host, access, build).await?;
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        Err(match failure(&self.host, action, what, response).await {
            ClientError::Unauthorized { host, message, .. } => ClientError::Unauthorized {
                have_credentials: self.client.credentials(&host).is_some(),
                host,
                message,
            },
            other => other,
        })
    }

    /// `GET /v2/`: is the registry there, and do our credentials open it?
    pub async fn ping(client: &Client, host: &str) -> Result<()> {
        let access = Access::pull("");
        let response = client
            .send(host, &access, &|http, base| {
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
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| ClientError::transport(&self.host, &e))?;
            if bytes.len() + piece.len() > MANIFEST_LIMIT {
                return Err(self.protocol(&what, "the manifest is larger than 4 MiB"));
            }
            bytes.extend_from_slice(&piece);
        }
        let digest = Digest::of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(ClientError::DigestMismatch {
                digest: expected,
                origin: self.display(reference),
                actual: digest,
            });
        }
        let media_type = document_media_type(&bytes, declared.as_deref())
            .ok_or_else(|| self.protocol(&what, "the document is not a manifest or an index"))?;
        let descriptor = Descriptor::new(&media_type, digest, bytes.len() as u64);
        Ok(ManifestResponse { descriptor, bytes })
    }

    fn protocol(&self, action: &str, detail: &str) -> ClientError {
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

    /// `POST /blobs/uploads/`, with `?mount=&from=` when a source repository is named.
    pub async fn start_upload(&self, mount: Option<(&Digest, &str)>) -> Result<UploadStart> {
        let mut access = Access::push(&self.name);
        let mut tail = "blobs/uploads/".to_string();
        if let Some((digest, from)) = mount {
            access.mount_from = Some(from.to_string());
            tail = format!("blobs/uploads/?mount={digest}&from={from}");
        }
        let response = self
            .call(
                &access,
                &format!("POST {tail}"),
                &format!("repository {}/{}", self.host, self.name),
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
                &|http, base| {
                    Ok(http
                        .post(self.url(base, &tail))
                        .header(header::CONTENT_LENGTH, 0))
                },
            )
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(UploadStart::Mounted);
        }
        Ok(UploadStart::Session(
            self.location(&response, "POST blobs/uploads/")?,
        ))
    }

    fn location(&self, response: &Response, action: &str) -> Result<String> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.protocol(action, "no Location header on an upload"))
    }

    /// Push one blob unless the repository has it: mount it from `mount_from` when that
    /// works, else upload it — whole, or in chunks resumed after a break when it is big.
    pub async fn push_blob(
        &self,
        descriptor: &Descriptor,
        body: BlobBody,
        mount_from: Option<&str>,
        on_bytes: OnBytes,
    ) -> Result<PushOutcome> {
        let digest = &descriptor.digest;
        if self
            .blob_size(digest, &Access::push(&self.name))
            .await?
            .is_some()
        {
            return Ok(PushOutcome::Exists);
        }
        let attempts = self.client.options().attempts.max(1);
        let mut body = Some(body);
        let mut failures = 0;
        loop {
            let mount = mount_from.filter(|from| *from != self.name);
            let location = match self.start_upload(mount.map(|from| (digest, from))).await? {
                UploadStart::Mounted => {
                    return Ok(PushOutcome::Mounted {
                        from: mount.unwrap_or_default().to_string(),
                    });
                }
                UploadStart::Session(location) => location,
            };
            let result = match body.take() {
                Some(BlobBody::File(path)) => {
                    let outcome = if descriptor.size > self.client.options().chunk_size {
                        self.upload_chunked(location, &path, descriptor, &on_bytes)
                            .await
                    } else {
                        let body = || file_body(&path, 0, descriptor.size, on_bytes.clone());
                        self.upload_whole(&location, digest, descriptor.size, &body)
                            .await
                    };
                    body = Some(BlobBody::File(path));
                    outcome
                }
                Some(BlobBody::Remote(from)) => {
                    let outcome = match from.blob(digest).await {
                        Ok(response) => {
                            let stream = verified_stream(
                                response,
                                descriptor,
                                from.display(&digest.to_string()),
                                on_bytes.clone(),
                            );
                            // A stream goes once: a second request (after a 401) fails
                            // and the whole blob is tried again.
                            let once =
                                std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(stream)));
                            let body = || {
                                once.lock().expect("body lock").take().ok_or_else(|| {
                                    self.protocol(
                                        "PUT blobs/uploads/<session>",
                                        "the registry asked to authenticate mid-upload",
                                    )
                                })
                            };
                            self.upload_whole(&location, digest, descriptor.size, &body)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    body = Some(BlobBody::Remote(from));
                    outcome
                }
                None => unreachable!("the body is put back after every attempt"),
            };
            match result {
                Ok(()) => return Ok(PushOutcome::Uploaded),
                Err(e) if e.is_retryable() && failures + 1 < attempts => {
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `PUT <location>?digest=` with the whole blob as the body; `body` makes it again
    /// if the registry asks to authenticate first.
    async fn upload_whole(
        &self,
        location: &str,
        digest: &Digest,
        size: u64,
        body: &(dyn Fn() -> Result<reqwest::Body> + Sync),
    ) -> Result<()> {
        self.call(
            &Access::push(&self.name),
            "PUT blobs/uploads/<session>",
            &format!("upload session for {digest}"),
            &[StatusCode::CREATED],
            &|http, base| {
                Ok(http
                    .put(with_digest(&resolve(base, location), digest))
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, size)
                    .body(body()?))
            },
        )
        .await?;
        Ok(())
    }

    /// `PATCH` chunk after chunk with `Content-Range`; after a broken or refused chunk, ask
    /// the registry how much it holds (`GET` the session's `Range`) and go on from there.
    async fn upload_chunked(
        &self,
        mut location: String,
        path: &Path,
        descriptor: &Descriptor,
        on_bytes: &OnBytes,
    ) -> Result<()> {
        let size = descriptor.size;
        let chunk = self.client.options().chunk_size.max(1);
        let attempts = self.client.options().attempts.max(1);
        let action = "PATCH blobs/uploads/<session>";
        let what = format!("upload session for {}", descriptor.digest);
        let access = Access::push(&self.name);
        let mut offset = 0;
        let mut failures = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let sent = self
                .call(
                    &access,
                    action,
                    &what,
                    &[StatusCode::ACCEPTED],
                    &|http, base| {
                        Ok(http
                            .patch(resolve(base, &location))
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .header(header::CONTENT_LENGTH, len)
                            .header("content-range", format!("{offset}-{}", offset + len - 1))
                            .body(file_body(path, offset, len, on_bytes.clone())?))
                    },
                )
                .await;
            match sent {
                Ok(response) => {
                    location = self.location(&response, action)?;
                    offset = range_end(&response).unwrap_or(offset + len);
                    failures = 0;
                    continue;
                }
                // 416: the registry holds a different amount than we thought; ask it.
                Err(ClientError::Status { status: 416, .. }) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e),
            }
            failures += 1;
            if failures >= attempts {
                return Err(ClientError::Transport {
                    host: self.host.clone(),
                    detail: format!(
                        "the upload of {} broke {failures} times in a row at byte {offset}",
                        descriptor.digest
                    ),
                });
            }
            tokio::time::sleep(backoff(failures)).await;
            // Distribution signs the offset into its upload URLs: after a broken chunk the
            // old URL is refused, and only a new upload can go on. Say so as a retryable
            // error, and `push_blob` starts one.
            (location, offset) = match self.upload_status(&location).await {
                Ok(status) => status,
                Err(e) if !e.is_retryable() => {
                    return Err(ClientError::Transport {
                        host: self.host.clone(),
                        detail: format!(
                            "the registry cannot resume the upload of {} ({e}); starting over",
                            descriptor.digest
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
        }
        let response = self
            .call(
                &access,
                "PUT blobs/uploads/<session>",
                &what,
                &[StatusCode::CREATED],
                &|http, base| {
                    Ok(http
                        .put(with_digest(&resolve(base, &location), &descriptor.digest))
                        .header(header::CONTENT_LENGTH, 0))
                },
            )
            .await?;
        drop(response);
        Ok(())
    }

    /// Where an upload stands: its next location and how many bytes the registry holds.
    async fn upload_status(&self, location: &str) -> Result<(String, u64)> {
        let action = "GET blobs/uploads/<session>";
        let response = self
            .call(
                &Access::push(&self.name),
                action,
                "upload session",
                &[StatusCode::NO_CONTENT, StatusCode::OK],
                &|http, base| Ok(http.get(resolve(base, location))),
            )
            .await?;
        let next = self
            .location(&response, action)
            .unwrap_or_else(|_| location.to_string());
        Ok((next, range_end(&response).unwrap_or(0)))
    }
}

/// A registry blob's bytes on their way to another registry, hashed as they pass. The
/// last piece is held back until size and digest are known to match, and the stream ends
/// with an error instead when they do not: the destination never receives the whole of a
/// wrong blob, so it cannot complete the upload (it would refuse it anyway, saying less).
fn verified_stream(
    response: Response,
    descriptor: &Descriptor,
    origin: String,
    on_bytes: OnBytes,
) -> impl futures::Stream<Item = Result<bytes::Bytes>> + Send + 'static {
    use sha2::Digest as _;
    struct State<S> {
        stream: S,
        hasher: sha2::Sha256,
        seen: u64,
        held: Option<bytes::Bytes>,
    }
    let expected = descriptor.digest.clone();
    let size = descriptor.size;
    let state = Some(State {
        stream: response.bytes_stream(),
        hasher: sha2::Sha256::new(),
        seen: 0,
        held: None,
    });
    futures::stream::unfold(state, move |state| {
        let expected = expected.clone();
        let origin = origin.clone();
        let on_bytes = on_bytes.clone();
        async move {
            let mut state = state?;
            loop {
                match state.stream.next().await {
                    Some(Ok(piece)) if piece.is_empty() => continue,
                    Some(Ok(piece)) => {
                        state.seen += piece.len() as u64;
                        state.hasher.update(&piece);
                        on_bytes(piece.len() as u64);
                        match state.held.replace(piece) {
                            Some(previous) => return Some((Ok(previous), Some(state))),
                            None => continue,
                        }
                    }
                    Some(Err(e)) => {
                        return Some((Err(ClientError::transport(&origin, &e)), None));
                    }
                    None => {
                        let actual = Digest::from_hasher(state.hasher);
                        return match super::check_blob(
                            &expected, size, &actual, state.seen, &origin,
                        ) {
                            Err(e) => Some((Err(e), None)),
                            Ok(()) => state.held.map(|last| (Ok(last), None)),
                        };
                    }
                }
            }
        }
    })
}

/// The media type of a manifest document: its `mediaType` field, else what the server
/// declared, else what its shape says (OCI manifests may leave the field out).
fn document_media_type(bytes: &[u8], declared: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    let known = |t: &str| media_type::is_manifest(t) || media_type::is_index(t);
    if let Some(t) = probe.media_type.filter(|t| known(t)) {
        return Some(t);
    }
    if let Some(t) = declared.filter(|t| known(t)) {
        return Some(t.to_string());
    }
    match (probe.manifests, probe.config) {
        (Some(_), None) => Some(media_type::OCI_INDEX.to_string()),
        (None, Some(_)) => Some(media_type::OCI_MANIFEST.to_string()),
        _ => None,
    }
}

/// One past the last byte the registry holds, from `Range: 0-<last>`.
fn range_end(response: &Response) -> Option<u64> {
    let range = response.headers().get(header::RANGE)?.to_str().ok()?;
    let (_, last) = range.trim_start_matches("bytes=").split_once('-')?;
    last.trim().parse::<u64>().ok().map(|l| l + 1)
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 << failures.min(5))
}

/// Upload locations may be absolute URLs (Distribution) or paths (kiln, the spec's
/// examples).
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

/// `len` bytes of a file from `offset`, read a MiB at a time as the socket takes them.
fn file_body(path: &Path, offset: u64, len: u64, on_bytes: OnBytes) -> Result<reqwest::Body> {
    let ctx = |e| ClientError::io(format!("reading {}", path.display()), e);
    let mut file = std::fs::File::open(path).map_err(ctx)?;
    file.seek(SeekFrom::Start(offset)).map_err(ctx)?;
    let reader = tokio::fs::File::from_std(file).take(len);
    let stream = ReaderStream::with_capacity(reader, READ_CHUNK)
        .inspect_ok(move |piece| on_bytes(piece.len() as u64));
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_base() {
        assert_eq!(
            resolve("http://h:1", "/v2/a/blobs/uploads/x"),
            "http://h:1/v2/a/blobs/uploads/x"
        );
        assert_eq!(
            resolve("http://h:1", "https://other/x?_state=1"),
            "https://other/x?_state=1"
        );
        let d = Digest::of(b"");
        assert_eq!(
            with_digest("http://h/u?_state=s", &d),
            format!("http://h/u?_state=s&digest={d}")
        );
    }

    #[test]
    fn media_type_comes_from_the_document_first() {
        let oci = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            document_media_type(oci, None).as_deref(),
            Some(media_type::OCI_MANIFEST)
        );
        assert_eq!(
            document_media_type(oci, Some(media_type::DOCKER_MANIFEST)).as_deref(),
            Some(media_type::DOCKER_MANIFEST)
        );
        let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert_eq!(
            document_media_type(list, None).as_deref(),
            Some(media_type::DOCKER_MANIFEST_LIST)
        );
        assert_eq!(document_media_type(b"[]", None), None);
    }
}
