//! Blob uploads: HEAD first, a cross-repository mount when a source is known, then the
//! bytes — whole, or in chunks that resume from the offset the registry reports after a
//! break — and, from another registry, a stream checked against its digest on the way.

use std::{
    io::{Seek, SeekFrom},
    path::Path,
};

use futures::{StreamExt, TryStreamExt};
use kiln_store::{Descriptor, Digest};
use reqwest::{Response, StatusCode, header};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{
    Access, ClientError, Result,
    repository::{BlobBody, OnBytes, PushOutcome, Repository, UploadStart},
    retry,
};

/// Bytes of a file go to the socket in pieces this big.
const READ_CHUNK: usize = 1 << 20;

impl Repository {
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
            if let Some((digest, _)) = mount {
                self.check_stored(&response, digest, "POST blobs/uploads/?mount=")?;
            }
            return Ok(UploadStart::Mounted);
        }
        Ok(UploadStart::Session(
            self.location(&response, "POST blobs/uploads/")?,
        ))
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
                    tokio::time::sleep(retry::pause(failures, &e)).await;
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
        let response = self
            .call(
                &Access::push(&self.name),
                "PUT blobs/uploads/<session>",
                &format!("upload session for {digest}"),
                &[StatusCode::CREATED],
                &|http, base| {
                    Ok(http
                        .put(with_digest(
                            &self.resolve(base, location, "PUT blobs/uploads/<session>")?,
                            digest,
                        ))
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, size)
                        .body(body()?))
                },
            )
            .await?;
        self.check_stored(&response, digest, "PUT blobs/uploads/<session>")
    }

    /// `PATCH` chunk after chunk with `Content-Range`; after a broken or refused chunk, ask
    /// the registry how much it holds (`GET` the session's `Range`) and go on from there.
    ///
    /// Bounded against a registry that answers 202 without keeping the bytes: a chunk that
    /// does not move the offset is a failure, and the failure count is reset only when the
    /// registry confirms more than it ever had, so every byte costs at most `attempts`
    /// failures (each after a growing pause). A `Range` beyond what was sent is an error.
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
        // The most the registry ever said it holds, and the most kiln ever sent.
        let (mut confirmed, mut sent_end) = (0, 0);
        let mut failures = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            sent_end = sent_end.max(offset + len);
            let sent = self
                .call(
                    &access,
                    action,
                    &what,
                    &[StatusCode::ACCEPTED],
                    &|http, base| {
                        Ok(http
                            .patch(self.resolve(base, &location, action)?)
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .header(header::CONTENT_LENGTH, len)
                            .header("content-range", format!("{offset}-{}", offset + len - 1))
                            .body(file_body(path, offset, len, on_bytes.clone())?))
                    },
                )
                .await;
            let why = match sent {
                Ok(response) => {
                    location = self.location(&response, action)?;
                    let end = range_end(&response).unwrap_or(offset + len);
                    self.check_range(end, sent_end, descriptor, action)?;
                    if end > offset {
                        offset = end;
                        if end > confirmed {
                            confirmed = end;
                            failures = 0;
                        }
                        continue;
                    }
                    // Accepted, yet the registry holds no more than before.
                    Err(format!(
                        "the registry accepted bytes {offset}-{} but holds only {end}",
                        offset + len - 1
                    ))
                }
                // 416: the registry holds a different amount than we thought; ask it.
                Err(e @ ClientError::Status { status: 416, .. }) => Ok(e),
                Err(e) if e.is_retryable() => Ok(e),
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures >= attempts {
                let detail = format!(
                    "the upload of {} made no progress {failures} times in a row at byte \
                     {offset} (last: {})",
                    descriptor.digest,
                    match &why {
                        Ok(e) => e.to_string(),
                        Err(text) => text.clone(),
                    }
                );
                // A network that keeps breaking may do better with a new upload; a
                // registry that keeps dropping what it accepted will not.
                return Err(match why {
                    Ok(_) => ClientError::Transport {
                        host: self.host.clone(),
                        detail,
                    },
                    Err(_) => self.protocol(action, &detail),
                });
            }
            let pause = match &why {
                Ok(e) => retry::pause(failures, e),
                Err(_) => retry::backoff(failures),
            };
            tokio::time::sleep(pause).await;
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
            self.check_range(offset, sent_end, descriptor, "GET blobs/uploads/<session>")?;
        }
        let put = "PUT blobs/uploads/<session>";
        let response = self
            .call(
                &access,
                put,
                &what,
                &[StatusCode::CREATED],
                &|http, base| {
                    Ok(http
                        .put(with_digest(
                            &self.resolve(base, &location, put)?,
                            &descriptor.digest,
                        ))
                        .header(header::CONTENT_LENGTH, 0))
                },
            )
            .await?;
        self.check_stored(&response, &descriptor.digest, put)
    }

    /// A `201` for a blob names what the registry stored in `Docker-Content-Digest`; a
    /// digest other than the one sent means the registry holds some other blob.
    fn check_stored(&self, response: &Response, digest: &Digest, action: &str) -> Result<()> {
        let echoed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        match echoed {
            Some(text) if text != digest.to_string() => Err(self.protocol(
                action,
                &format!(
                    "the registry answered 201 for blob {digest} but says it stored {text} \
                     (Docker-Content-Digest)"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A registry cannot hold more of a blob than kiln sent it: saying so is an error, not
    /// a reason to skip the rest (and complete an upload that lacks it).
    fn check_range(
        &self,
        end: u64,
        sent: u64,
        descriptor: &Descriptor,
        action: &str,
    ) -> Result<()> {
        if end <= sent {
            return Ok(());
        }
        Err(self.protocol(
            action,
            &format!(
                "its Range says it holds {end} bytes of {}, but kiln sent only {sent}",
                descriptor.digest
            ),
        ))
    }

    /// An upload `Location` as a URL: relative to the registry, or absolute (possibly on
    /// another host, which then gets no credentials); never a scheme but http or https.
    fn resolve(&self, base: &str, location: &str, action: &str) -> Result<String> {
        super::origin::resolve(base, location, &self.host, action)
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
                &|http, base| Ok(http.get(self.resolve(base, location, action)?)),
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
    struct State<S> {
        stream: S,
        hasher: kiln_store::Hasher,
        seen: u64,
        held: Option<bytes::Bytes>,
    }
    let expected = descriptor.digest.clone();
    let size = descriptor.size;
    let state = Some(State {
        stream: response.bytes_stream(),
        hasher: expected.hasher(),
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
                        // Too many bytes: fail now, with the held piece unsent, so the
                        // destination never receives a whole blob of the right size.
                        if state.seen > size {
                            let error = ClientError::SizeMismatch {
                                digest: expected,
                                origin,
                                expected: size,
                                actual: state.seen,
                            };
                            return Some((Err(error), None));
                        }
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
                        let actual = state.hasher.finish();
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

/// One past the last byte the registry holds, from `Range: 0-<last>`.
fn range_end(response: &Response) -> Option<u64> {
    let range = response.headers().get(header::RANGE)?.to_str().ok()?;
    let (_, last) = range.trim_start_matches("bytes=").split_once('-')?;
    last.trim().parse::<u64>().ok().map(|l| l + 1)
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
    fn the_digest_joins_the_query() {
        let d = Digest::of(b"");
        assert_eq!(
            with_digest("http://h/u?_state=s", &d),
            format!("http://h/u?_state=s&digest={d}")
        );
    }
}
