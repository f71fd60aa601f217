//! A registry behind the Docker token flow, for the client's bearer-auth tests: every
//! `/v2/` request needs `Authorization: Bearer <token>` whose scope covers it, or gets a
//! 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; `/token` hands tokens
//! out for Basic credentials. Requests that pass are forwarded, streaming, to a real
//! registry behind it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    body::Body,
    extract::{RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use futures::TryStreamExt;

struct Shared {
    addr: String,
    upstream: String,
    basic: String,
    tokens: Mutex<HashMap<String, Vec<String>>>,
    issued: AtomicU64,
    /// Set: the next manifest PUT finds every token expired (once).
    expire_at_manifest_put: AtomicBool,
    http: reqwest::Client,
}

pub struct TokenRegistry {
    pub addr: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenRegistry {
    pub fn start(upstream: &str, user: &str, password: &str) -> TokenRegistry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            addr: addr.clone(),
            upstream: format!("http://{upstream}"),
            basic: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
            expire_at_manifest_put: AtomicBool::new(false),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
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
                let app = Router::new()
                    .route("/token", get(token))
                    .fallback(forward)
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        TokenRegistry {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// How many tokens `/token` has handed out.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.issued.load(Ordering::SeqCst)
    }

    /// Make every token handed out so far expire just before the next manifest PUT: a
    /// client mid-push must fetch a new one and go on.
    pub fn expire_tokens_at_next_manifest_put(&self) {
        self.shared
            .expire_at_manifest_put
            .store(true, Ordering::SeqCst);
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(shared.basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad user name or password"}]}"#,
        )
            .into_response();
    }
    let scopes: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(|v| {
            v.replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",")
        })
        .collect();
    let n = shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("token-{n}");
    shared.tokens.lock().unwrap().insert(token.clone(), scopes);
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"token":"{token}","expires_in":300}}"#),
    )
        .into_response()
}

/// The repository a `/v2/<name>/…` path names, and whether the method writes.
fn needs(method: &Method, path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/v2/")?;
    let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    let write = !matches!(*method, Method::GET | Method::HEAD);
    Some((rest[..end].to_string(), write))
}

fn allowed(shared: &Shared, headers: &HeaderMap, need: &Option<(String, bool)>) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let tokens = shared.tokens.lock().unwrap();
    let Some(scopes) = tokens.get(token) else {
        return false;
    };
    match need {
        None => true, // GET /v2/: any valid token
        Some((name, write)) => scopes.iter().any(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, repo, actions) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
            kind == Some("repository")
                && repo == Some(name.as_str())
                && actions
                    .split(',')
                    .any(|a| a == if *write { "push" } else { "pull" })
        }),
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let need = needs(request.method(), &path);
    if request.method() == Method::PUT
        && path.contains("/manifests/")
        && shared.expire_at_manifest_put.swap(false, Ordering::SeqCst)
    {
        shared.tokens.lock().unwrap().clear();
    }
    if !allowed(&shared, request.headers(), &need) {
        let scope = need
            .map(|(name, write)| {
                let actions = if write { "pull,push" } else { "pull" };
                format!(r#",scope="repository:{name}:{actions}""#)
            })
            .unwrap_or_default();
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="kiln-test"{scope}"#,
            shared.addr
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).unwrap(),
            )],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response();
    }
    let (parts, body) = request.into_parts();
    let url = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = shared.http.request(parts.method, url);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::AUTHORIZATION {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let response = match upstream.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out.body(Body::from_stream(
        response.bytes_stream().map_err(std::io::Error::other),
    ))
    .unwrap()
}
