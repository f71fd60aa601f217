//! `kiln copy docker://A docker://B` from a source registry that sends a blob with more
//! or fewer bytes than its descriptor says: kiln fails naming the source, and the
//! destination (kiln's registry, CNCF Distribution) never holds the blob.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    Kiln,
    servers::{Distribution, Registry},
};
use sha2::{Digest as _, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// How the source misbehaves with the layer.
#[derive(Clone, Copy, Debug)]
enum Layer {
    /// `size` bytes of other content, then more bytes after a pause: a piece that looks
    /// like a whole (wrong) blob arrives first.
    WrongThenMore,
    /// The right bytes, then more after a pause.
    RightThenMore,
    /// Fewer bytes than the descriptor says.
    Short,
}

struct Image {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
    mode: Layer,
}

/// A source registry on 127.0.0.1 serving one image, `x:1`, whose layer misbehaves.
struct Source {
    addr: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Source {
    fn start(mode: Layer) -> (Source, String) {
        let layer: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#.to_vec();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(&layer), "size": layer.len()}],
        }))
        .unwrap();
        let layer_digest = sha(&layer);
        let image = Arc::new(Image {
            manifest,
            config,
            layer,
            mode,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new()
                    .route("/v2/", get(|| async { "{}" }))
                    .route("/v2/x/manifests/{reference}", get(serve_manifest))
                    .route("/v2/x/blobs/{digest}", get(blob))
                    .with_state(image);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let source = Source {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        };
        (source, layer_digest)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_manifest(State(image): State<Arc<Image>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json".to_string(),
            ),
            (
                header::HeaderName::from_static("docker-content-digest"),
                sha(&image.manifest),
            ),
        ],
        image.manifest.clone(),
    )
        .into_response()
}

async fn blob(State(image): State<Arc<Image>>, Path(digest): Path<String>) -> Response {
    if digest == sha(&image.config) {
        return image.config.clone().into_response();
    }
    if digest != sha(&image.layer) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (first, rest): (Vec<u8>, Vec<u8>) = match image.mode {
        Layer::WrongThenMore => {
            let mut wrong = image.layer.clone();
            wrong[100] ^= 0xff;
            (wrong, b"and some more".to_vec())
        }
        Layer::RightThenMore => (image.layer.clone(), b"and some more".to_vec()),
        Layer::Short => (image.layer[..image.layer.len() - 1000].to_vec(), Vec::new()),
    };
    // Two pieces, apart in time, so the client sees the first as a whole before the rest.
    let pieces = futures::stream::unfold(0, move |i| {
        let (first, rest) = (first.clone(), rest.clone());
        async move {
            match i {
                0 => Some((Ok::<_, std::io::Error>(first), 1)),
                1 if !rest.is_empty() => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Some((Ok(rest), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(pieces).into_response()
}

/// The status of `HEAD /v2/x/blobs/<digest>` on a registry at `addr`.
fn head_blob(addr: &str, digest: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "HEAD /v2/x/blobs/{digest} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string()
}

fn copy_fails_naming_the_source(destination: &str) {
    for mode in [Layer::WrongThenMore, Layer::RightThenMore, Layer::Short] {
        let (source, layer) = Source::start(mode);
        let kiln = Kiln::new();
        let err = kiln.fails(&[
            "copy",
            "--quiet",
            &format!("docker://{}/x:1", source.addr),
            &format!("docker://{destination}/x:1"),
        ]);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(&source.addr) && last.contains(&layer),
            "{mode:?}: the error should name the source's blob:\n{err}"
        );
        assert!(
            !last.contains(destination) && !err.contains("DIGEST_INVALID"),
            "{mode:?}: the error blames the destination:\n{err}"
        );
        assert_eq!(
            head_blob(destination, &layer),
            "404",
            "{mode:?}: the destination holds the blob"
        );
    }
}

#[test]
fn a_source_sending_the_wrong_amount_is_named_and_nothing_reaches_kilns_registry() {
    let home = Kiln::new();
    let registry = Registry::start(&home);
    copy_fails_naming_the_source(&registry.addr);
}

#[test]
fn a_source_sending_the_wrong_amount_is_named_and_nothing_reaches_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Distribution::start(dir.path(), None);
    copy_fails_naming_the_source(&registry.addr);
}
