//! A scripted registry for the hostile-registry tests: an HTTP server on 127.0.0.1 whose
//! every answer the test writes (a handler called per request), recording what each
//! request carried. Dropping it stops it at once, hanging answers and all.

use std::{
    collections::HashMap,
    io::Read,
    path::Path,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures::{FutureExt as _, StreamExt as _, future::BoxFuture};
use sha2::{Digest as _, Sha256};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn authorization(&self) -> Option<String> {
        self.headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or(&self.uri)
    }
}

type Handler = Arc<dyn Fn(Seen) -> BoxFuture<'static, Response> + Send + Sync>;

#[derive(Default)]
struct Shared {
    handler: OnceLock<Handler>,
    seen: Mutex<Vec<Seen>>,
}

pub struct Scripted {
    pub addr: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scripted {
    /// Listening already; answers 503 until `script` gives it a handler.
    pub fn new() -> Scripted {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(answer).with_state(state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            // Connections still open (a hanging answer, an endless body) are dropped.
            rt.shutdown_background();
        });
        Scripted {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn script(
        &self,
        handler: impl Fn(Seen) -> BoxFuture<'static, Response> + Send + Sync + 'static,
    ) {
        assert!(
            self.shared.handler.set(Arc::new(handler)).is_ok(),
            "scripted once"
        );
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Every `Authorization` header this server was sent.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen().iter().filter_map(Seen::authorization).collect()
    }

    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path().contains(path_part))
            .count()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        headers: parts.headers,
        body,
    };
    shared.seen.lock().unwrap().push(seen.clone());
    match shared.handler.get() {
        Some(handler) => handler(seen).await,
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A response from a status, headers and a body.
pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

/// A body of `total` bytes of `fill`, sent in 64 KiB pieces, counting in `sent` what the
/// server managed to hand over before the client hung up.
pub fn flood(total: u64, sent: Arc<std::sync::atomic::AtomicU64>) -> Body {
    use std::sync::atomic::Ordering;
    let piece = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
    let pieces = total.div_ceil(64 << 10);
    let stream = futures::stream::iter(0..pieces).map(move |_| {
        sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
        Ok::<_, std::io::Error>(piece.clone())
    });
    Body::from_stream(stream)
}

/// A body that sends `first` at once, then one byte every `every`, `count` bytes at most.
pub fn drip(first: Vec<u8>, every: Duration, count: usize) -> Body {
    let head =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(first)) },
        );
    let tail = futures::stream::iter(0..count).then(move |_| async move {
        tokio::time::sleep(every).await;
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"x"))
    });
    Body::from_stream(head.chain(tail))
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A one-layer OCI image, its blobs by digest.
pub struct TestImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub blobs: HashMap<String, Vec<u8>>,
    pub layer_digest: String,
}

impl TestImage {
    pub fn new(files: &[(String, Vec<u8>)]) -> TestImage {
        let layer = super::tar_of_files(files);
        let config = serde_json::to_vec(&super::config_for(&[&layer])).unwrap();
        let descriptor = |media_type: &str, bytes: &[u8]| serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        }))
        .unwrap();
        let layer_digest = sha256(&layer);
        TestImage {
            manifest_digest: sha256(&manifest),
            manifest,
            blobs: HashMap::from([(sha256(&config), config), (layer_digest.clone(), layer)]),
            layer_digest,
        }
    }

    /// The registry's answer for `GET /v2/<name>/manifests/<any>` and `/blobs/<digest>`,
    /// if this image has it.
    pub fn serve(&self, seen: &Seen) -> Option<Response> {
        let path = seen.path();
        if path.contains("/manifests/") {
            return Some(reply(
                200,
                &[
                    ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                    ("docker-content-digest", &self.manifest_digest),
                ],
                self.manifest.clone(),
            ));
        }
        let digest = path.rsplit_once("/blobs/")?.1;
        let blob = self.blobs.get(digest)?;
        Some(reply(200, &[], blob.clone()))
    }
}

/// An answer ready now, as handlers return them.
pub fn now(response: Response) -> BoxFuture<'static, Response> {
    futures::future::ready(response).boxed()
}

/// Documents by digest, and the one the tag `1` names.
pub struct Documents {
    pub by_digest: std::collections::HashMap<String, (String, Vec<u8>)>,
    pub top: String,
}

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn index_of(children: &[(&str, &[u8])], times: usize) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .flat_map(|(media_type, bytes)| {
            std::iter::repeat_n(
                serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()}),
                times,
            )
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": manifests,
    }))
    .unwrap()
}

/// Indexes `levels` deep above the image's manifest, each listing the one below `times`
/// times.
pub fn nested(image: &TestImage, levels: usize, times: usize) -> Documents {
    let mut by_digest = std::collections::HashMap::new();
    by_digest.insert(
        image.manifest_digest.clone(),
        (MANIFEST.to_string(), image.manifest.clone()),
    );
    let (mut below, mut below_type) = (image.manifest.clone(), MANIFEST);
    for _ in 0..levels {
        let index = index_of(&[(below_type, &below)], times);
        by_digest.insert(sha256(&index), (INDEX.to_string(), index.clone()));
        (below, below_type) = (index, INDEX);
    }
    Documents {
        by_digest,
        top: sha256(&below),
    }
}

pub fn serve_documents(server: &Scripted, image: Arc<TestImage>, documents: Documents) {
    server.script(move |seen: Seen| {
        let path = seen.path();
        if let Some(reference) = path.split("/manifests/").nth(1) {
            let digest = if reference == "1" {
                &documents.top
            } else {
                &reference.to_string()
            };
            return now(match documents.by_digest.get(digest) {
                Some((media_type, bytes)) => {
                    reply(200, &[("content-type", media_type.as_str())], bytes.clone())
                }
                None => reply(404, &[], ""),
            });
        }
        now(image.serve(&seen).unwrap_or_else(|| reply(200, &[], "")))
    });
}

/// Run `cmd` and wait at most `limit` for it: a command still running then is killed and
/// the test fails, so that a client that waits forever fails the test instead of hanging
/// it.
pub fn run_within(mut cmd: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr:\n{}",
                read(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: read(&out).into_bytes(),
        stderr: read(&err).into_bytes(),
    }
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// A docker config directory holding `user:password` for `host`.
pub fn docker_config(dir: &Path, host: &str, user: &str, password: &str) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&serde_json::json!({"auths": {host: {"auth": auth}}})).unwrap(),
    )
    .unwrap();
}
