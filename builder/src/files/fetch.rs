//! `fetch`: one HTTP(S) GET of an ADD source, streamed into a file and hashed as it
//! streams (never held in memory whole). Redirects are followed (10 at most, Go's limit
//! that BuildKit has); a connection must open within the connect timeout and the answer
//! must not pause longer than the read timeout; only a 2xx answer is content. No
//! `Accept-Encoding` is sent, so the bytes stored are the bytes served.

use std::{
    fs::File,
    io::Write,
    path::Path,
    time::{Duration, SystemTime},
};

use kiln_store::{Algorithm, Digest, Hasher};
use reqwest::header::LAST_MODIFIED;

use super::{FilesError, error::IoContext};

/// Redirects followed before giving up.
const REDIRECTS: usize = 10;

/// What a GET left on disk.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub sha256: Digest,
    /// The content's digest in the checksum's algorithm when that is not sha256.
    pub other: Option<Digest>,
    /// The `Last-Modified` header, when the server sent a valid one.
    pub last_modified: Option<SystemTime>,
}

/// An HTTP client with the runtime it runs on: one per build, kept so that connections
/// (bound to a runtime's I/O driver) are reused rather than left to a dropped runtime.
pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    read: Duration,
}

impl Http {
    pub fn new(connect: Duration, read: Duration) -> Result<Http, FilesError> {
        let setup = |why: String| FilesError::Fetch {
            url: String::new(),
            why: format!("setting up HTTP: {why}"),
        };
        // The executor is synchronous: a small runtime of its own, on this thread.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect)
            .read_timeout(read)
            .redirect(reqwest::redirect::Policy::limited(REDIRECTS))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(Http {
            runtime,
            client,
            read,
        })
    }

    /// GET `url` into `to` (created, must not exist), hashing with sha256 and, when
    /// given, `also`. A failure leaves a partial file for the caller to remove.
    pub fn get(&self, url: &str, to: &Path, also: Option<Algorithm>) -> Result<Body, FilesError> {
        let fail = |why: String| FilesError::Fetch {
            url: url.to_string(),
            why,
        };
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(to)
            .at(to)?;
        let mut sha256 = Hasher::new(Algorithm::Sha256);
        let mut other = also.filter(|a| *a != Algorithm::Sha256).map(Hasher::new);
        let read = self.read;
        let last_modified = self.runtime.block_on(async {
            let mut response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| fail(describe(&e, read)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("the server answered {status}")));
            }
            let last_modified = response
                .headers()
                .get(LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok());
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| fail(describe(&e, read)))?
            {
                sha256.update(&chunk);
                if let Some(h) = &mut other {
                    h.update(&chunk);
                }
                file.write_all(&chunk).at(to)?;
            }
            Ok(last_modified)
        })?;
        file.sync_all().at(to)?;
        Ok(Body {
            sha256: sha256.finish(),
            other: other.map(Hasher::finish),
            last_modified,
        })
    }
}

/// A transport failure in words a user can act on: refused, timed out, too many
/// redirects, else reqwest's chain of causes.
fn describe(e: &reqwest::Error, read: Duration) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut refused = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            refused = true;
        }
        causes.push(s.to_string());
        source = s.source();
    }
    if refused {
        return "connection refused".into();
    }
    if e.is_timeout() {
        return if e.is_connect() {
            "no connection within the connect timeout".into()
        } else {
            format!("no data for {} s (the read timeout)", read.as_secs())
        };
    }
    if e.is_redirect() {
        return format!("more than {REDIRECTS} redirects");
    }
    // reqwest's outer message repeats the URL; its causes say what happened.
    causes.dedup();
    let inner: Vec<&str> = causes.iter().skip(1).map(String::as_str).collect();
    if inner.is_empty() {
        causes.join(": ")
    } else {
        inner.join(": ")
    }
}
