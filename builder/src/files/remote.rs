//! ADD of http(s) URLs, BuildKit's way (its httpsource and Dockerfile frontend): the
//! file is named after the URL path's last segment (`Content-Disposition` is not looked
//! at: the frontend always names the file), is 0600 unless `--chmod`, owned 0:0 unless
//! `--chown`, and has the `Last-Modified` time (else the epoch); remote archives are
//! never extracted. With `--checksum` the cache input is the checksum itself, so a cached
//! build needs no network; without, it is the content's digest and Last-Modified, so the
//! URL is fetched to compute the key. [`Downloads`] fetches each URL once per build: the
//! download made for the key is the one a cache miss then writes.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use kiln_store::{Algorithm, Digest, Hasher};

use super::{
    FilesError,
    error::IoContext,
    fetch::{Body, Http},
};
use crate::snapshot::Scratch;

/// BuildKit's name for a URL whose path names nothing (`http://host/`).
const UNNAMED: &str = "__unnamed__";

/// The URLs fetched in one build, each in a file under a locked scratch directory (made
/// on first use; removed when this is dropped, or by the next build's cleanup after a
/// SIGKILL).
pub struct Downloads {
    scratch_root: PathBuf,
    scratch: Option<Scratch>,
    connect_timeout: Duration,
    read_timeout: Duration,
    http: Option<Http>,
    fetched: HashMap<String, Download>,
}

/// One URL's content on disk.
#[derive(Clone, Debug)]
pub(crate) struct Download {
    pub path: PathBuf,
    pub body: Body,
}

/// What a URL source adds to the cache input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UrlInput {
    /// `--checksum`: known without the network.
    Pinned(Digest),
    /// Fetched: the content's sha256 and Last-Modified (BuildKit keys on both).
    Fetched {
        digest: Digest,
        last_modified: Option<SystemTime>,
    },
}

impl Downloads {
    /// Scratch directories go under `scratch_root` (the snapshot store's, whose stale
    /// entries a build cleans up); timeouts are the registry client's defaults.
    pub fn new(scratch_root: impl Into<PathBuf>) -> Downloads {
        Downloads {
            scratch_root: scratch_root.into(),
            scratch: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            http: None,
            fetched: HashMap::new(),
        }
    }

    /// How long a connection may take, and the longest pause in an answer.
    pub fn set_timeouts(&mut self, connect: Duration, read: Duration) {
        self.connect_timeout = connect;
        self.read_timeout = read;
    }

    /// The cache input of one URL source.
    pub(crate) fn input(
        &mut self,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<UrlInput, FilesError> {
        if let Some(sum) = checksum {
            return Ok(UrlInput::Pinned(parse_checksum(sum)?));
        }
        let d = self.get(url, None)?;
        Ok(UrlInput::Fetched {
            digest: d.body.sha256.clone(),
            last_modified: d.body.last_modified,
        })
    }

    /// The URL's content, fetched on the first call only, checked against `checksum`.
    pub(crate) fn get(
        &mut self,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<Download, FilesError> {
        let expected = checksum.map(parse_checksum).transpose()?;
        let download = match self.fetched.get(url) {
            Some(d) => d.clone(),
            None => {
                let d = self.fetch(url, expected.as_ref().map(Digest::algorithm))?;
                self.fetched.insert(url.to_string(), d.clone());
                d
            }
        };
        if let Some(expected) = expected {
            let actual = match expected.algorithm() {
                Algorithm::Sha256 => download.body.sha256.clone(),
                other => match &download.body.other {
                    Some(d) if d.algorithm() == other => d.clone(),
                    // Fetched earlier without this checksum: hash the file again.
                    _ => hash_file(&download.path, other).at(&download.path)?,
                },
            };
            if actual != expected {
                return Err(FilesError::Checksum {
                    url: url.to_string(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(download)
    }

    fn fetch(&mut self, url: &str, also: Option<Algorithm>) -> Result<Download, FilesError> {
        let http = match self.http.take() {
            Some(http) => http,
            None => Http::new(self.connect_timeout, self.read_timeout)?,
        };
        let http = self.http.insert(http);
        let scratch = match self.scratch.take() {
            Some(scratch) => scratch,
            None => {
                Scratch::create(&self.scratch_root, "add-url").map_err(|e| FilesError::Fetch {
                    url: url.to_string(),
                    why: format!("a scratch directory for the download: {e}"),
                })?
            }
        };
        let scratch = self.scratch.insert(scratch);
        let path = scratch.path().join(self.fetched.len().to_string());
        match http.get(url, &path, also) {
            Ok(body) => Ok(Download { path, body }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

/// `sha256:<hex>` or `sha512:<hex>`, as BuildKit's digest.Parse takes it.
pub(crate) fn parse_checksum(sum: &str) -> Result<Digest, FilesError> {
    sum.parse::<Digest>()
        .map_err(|e| FilesError::Invalid(format!("invalid checksum {sum:?}: {e}")))
}

/// The name a URL's file gets: the last segment of its (decoded) path, BuildKit's
/// frontend rule (Go's `path.Base`), or `__unnamed__`.
pub(crate) fn file_name(url: &str) -> String {
    let path = reqwest::Url::parse(url)
        .map(|u| percent_decode(u.path()))
        .unwrap_or_default();
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    match base {
        "" | "." | ".." => UNNAMED.to_string(),
        name => name.to_string(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}
