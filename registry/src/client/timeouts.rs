//! How long kiln waits on a registry. Every request goes through `exchange`: it must keep
//! moving (its body taken by the socket, then the answer's headers) with no pause longer
//! than the read timeout; the answer's body must not pause that long either, nor move
//! slower than `MIN_SPEED` over any read timeout's worth of waiting (a blob that drips a
//! byte a second never trips a plain idle timeout). Only time spent waiting on the network
//! counts, so a slow disk behind the reader never looks like a stalled registry, and an
//! upload whose own source is slow (a disk, another registry) never looks like a registry
//! that stopped reading.
//!
//! reqwest's own `read_timeout` is not used: it arms one timer for the whole request phase,
//! so an upload that takes longer than the timeout to send would fail however fast it moved.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::{Request, Response, ResponseBuilderExt as _};
use tokio::time::{Instant, Sleep};

use super::{ClientError, Result};

/// Slower than this over a read timeout of waiting, a body is stalled: 1 KiB/s.
pub const MIN_SPEED: u64 = 1024;

/// Request bodies go to the socket in pieces no bigger than this, so that progress is
/// seen while a large piece (a manifest, a MiB read from a file) is being written.
const PIECE: usize = 64 << 10;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Send `request` and wait for its answer, giving up when nothing moves for `read`; the
/// answer's body comes back watched the same way. `host` and `action` name the request
/// in the errors.
pub(super) async fn exchange(
    http: &reqwest::Client,
    mut request: Request,
    read: Duration,
    host: &str,
    action: &str,
) -> Result<Response> {
    let activity = Arc::new(Mutex::new(Activity {
        last: Instant::now(),
        producing: false,
    }));
    if let Some(body) = request.body_mut().take() {
        *request.body_mut() = Some(reqwest::Body::wrap(Tracked {
            inner: body,
            rest: None,
            activity: activity.clone(),
        }));
    }
    let sent = http.execute(request);
    tokio::pin!(sent);
    let response = loop {
        let deadline = activity.lock().expect("activity lock").last + read;
        tokio::select! {
            answer = &mut sent => break answer.map_err(|e| ClientError::transport(host, &e))?,
            () = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                let mut activity = activity.lock().expect("activity lock");
                if activity.producing {
                    // The socket waits on the body's own source (a disk, another
                    // registry, which has timeouts of its own): not this registry's delay.
                    activity.last = now;
                } else if activity.last + read <= now {
                    return Err(ClientError::Timeout {
                        host: super::origin::blamed(host),
                        detail: format!(
                            "no answer to {action} within {} (--read-timeout)",
                            seconds(read)
                        ),
                    });
                }
            }
        }
    };
    Ok(watch(response, read, host, action))
}

/// The same response, its body replaced by one that fails when the registry stalls.
fn watch(response: Response, read: Duration, host: &str, action: &str) -> Response {
    let url = response.url().clone();
    let (parts, body) = http::Response::from(response).into_parts();
    let watched = Watched {
        inner: body,
        read,
        host: host.to_string(),
        action: action.to_string(),
        idle_since: None,
        mark: None,
        window_waited: Duration::ZERO,
        window_bytes: 0,
        timer: Box::pin(tokio::time::sleep(read)),
    };
    let mut builder = http::Response::builder()
        .status(parts.status)
        .version(parts.version)
        .url(url);
    if let Some(headers) = builder.headers_mut() {
        *headers = parts.headers;
    }
    let rebuilt = builder
        .body(reqwest::Body::wrap(watched))
        .expect("a response rebuilt from valid parts");
    Response::from(rebuilt)
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// When a request last moved, and whether the socket is waiting for its body's source.
struct Activity {
    last: Instant,
    producing: bool,
}

/// A request body that notes the time whenever the socket takes a piece of it.
struct Tracked {
    inner: reqwest::Body,
    /// What is left of a piece larger than `PIECE`.
    rest: Option<Bytes>,
    activity: Arc<Mutex<Activity>>,
}

impl Tracked {
    fn note(&self, producing: bool) {
        let mut activity = self.activity.lock().expect("activity lock");
        activity.last = Instant::now();
        activity.producing = producing;
    }

    fn piece(&mut self, mut data: Bytes) -> Frame<Bytes> {
        self.note(false);
        if data.len() > PIECE {
            self.rest = Some(data.split_off(PIECE));
        }
        Frame::data(data)
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, reqwest::Error>>> {
        if let Some(rest) = self.rest.take() {
            return Poll::Ready(Some(Ok(self.piece(rest))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(self.piece(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Pending => {
                self.note(true);
                Poll::Pending
            }
            other => {
                self.note(false);
                other
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.as_ref().map_or(0, |r| r.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// A response body that fails when the registry goes quiet or drips.
struct Watched {
    inner: reqwest::Body,
    read: Duration,
    host: String,
    action: String,
    /// Since when the current wait for bytes has lasted.
    idle_since: Option<Instant>,
    /// Since when the current wait counts towards the window.
    mark: Option<Instant>,
    /// Waiting done in this window, besides the current wait.
    window_waited: Duration,
    window_bytes: u64,
    timer: Pin<Box<Sleep>>,
}

impl Watched {
    fn least(&self) -> u64 {
        (MIN_SPEED as f64 * self.read.as_secs_f64()) as u64
    }

    fn stalled(&self) -> BoxError {
        Box::new(ClientError::Timeout {
            host: self.host.clone(),
            detail: format!(
                "the answer to {} stalled: {} bytes in {} of waiting, less than 1 KiB/s \
                 (--read-timeout)",
                self.action,
                self.window_bytes,
                seconds(self.read)
            ),
        })
    }

    fn idle(&self) -> BoxError {
        Box::new(ClientError::Timeout {
            host: self.host.clone(),
            detail: format!(
                "the answer to {} stopped: nothing for {} (--read-timeout)",
                self.action,
                seconds(self.read)
            ),
        })
    }

    /// A window full of waiting closes: fine if enough came, a stall otherwise.
    fn close_window(&mut self, now: Instant) -> std::result::Result<(), BoxError> {
        if self.window_bytes < self.least() {
            return Err(self.stalled());
        }
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        if self.mark.is_some() {
            self.mark = Some(now);
        }
        Ok(())
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let now = Instant::now();
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(mark) = this.mark.take() {
                        this.window_waited += now - mark;
                    }
                    this.idle_since = None;
                    if let Some(data) = frame.data_ref() {
                        this.window_bytes += data.len() as u64;
                    }
                    if this.window_waited >= this.read
                        && let Err(e) = this.close_window(now)
                    {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            let idle_since = *this.idle_since.get_or_insert(now);
            let mark = *this.mark.get_or_insert(now);
            if now - idle_since >= this.read {
                return Poll::Ready(Some(Err(this.idle())));
            }
            let mut window = this.window_waited + (now - mark);
            if window >= this.read {
                if let Err(e) = this.close_window(now) {
                    return Poll::Ready(Some(Err(e)));
                }
                window = Duration::ZERO;
            }
            let deadline = (idle_since + this.read).min(now + (this.read - window));
            this.timer.as_mut().reset(deadline);
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The deadline passed while we looked: check again.
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use http_body::Body as _;

    use super::*;

    fn watched(
        stream: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
        read: Duration,
    ) -> Watched {
        Watched {
            inner: reqwest::Body::wrap_stream(stream),
            read,
            host: "registry.test".into(),
            action: "GET blobs/x".into(),
            idle_since: None,
            mark: None,
            window_waited: Duration::ZERO,
            window_bytes: 0,
            timer: Box::pin(tokio::time::sleep(read)),
        }
    }

    /// Everything read, or the first error's text.
    async fn drain(mut body: Watched, pause: Duration) -> std::result::Result<usize, String> {
        let mut total = 0;
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => total += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(total),
            }
            tokio::time::sleep(pause).await;
        }
    }

    #[tokio::test]
    async fn a_dripping_body_is_stalled() {
        let drip = futures::stream::iter(0..1000).then(|_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Bytes::from_static(b"x"))
        });
        let err = drain(watched(drip, Duration::from_millis(300)), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            err.contains("registry.test") && err.contains("stalled"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_silent_body_stops() {
        let silent = futures::stream::once(async { Ok(Bytes::from_static(b"head")) })
            .chain(futures::stream::pending());
        let err = drain(watched(silent, Duration::from_millis(300)), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(err.contains("nothing for 0.3 s"), "{err}");
    }

    /// A reader slower than the timeout (a slow disk) is not a stalled registry: only
    /// time spent waiting for bytes counts.
    #[tokio::test]
    async fn a_slow_reader_is_not_a_stall() {
        let fast = futures::stream::iter((0..4).map(|_| Ok(Bytes::from(vec![0u8; 100]))));
        let read = drain(
            watched(fast, Duration::from_millis(100)),
            Duration::from_millis(250),
        )
        .await
        .unwrap();
        assert_eq!(read, 400);
    }

    /// An upload whose source pauses longer than the read timeout is not a registry that
    /// stopped reading: the registry waits on kiln then.
    #[tokio::test]
    async fn a_slow_upload_source_is_not_a_silent_registry() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/upload",
            axum::routing::put(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let source = futures::stream::iter(0..2).then(|n| async move {
            if n == 1 {
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 1000]))
        });
        let http = reqwest::Client::new();
        let request = http
            .put(format!("http://{addr}/upload"))
            .body(reqwest::Body::wrap_stream(source))
            .build()
            .unwrap();
        let read = Duration::from_millis(300);
        let response = exchange(&http, request, read, "registry.test", "PUT /upload")
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "2000");
        server.abort();
    }
}
