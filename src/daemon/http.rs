//! The HTTP endpoint (`[gateway] http`, `run --http`; `--metrics` is its old name), on
//! hyper, on a thread of its own with a single-threaded tokio runtime: it never holds up
//! the decision thread, which only swaps in a new snapshot (the metrics text and the
//! status JSON) at most twice a second. Read-only: `GET` and `HEAD` of `/metrics`
//! (Prometheus' text format), `/status.json` (the site as `Station::status` gives it,
//! with the latest records) and `/` (the status page); 404 for any other path, 405 for
//! any other method.
//!
//! Bounded: at most `MAX_CONNECTIONS` connections at once (more are closed as they
//! come), a request's head at most `MAX_HEAD` bytes (a larger one is answered 431 and
//! closed), its head read within `HEAD_TIMEOUT` (a slow or idle client is closed), a
//! connection at most `MAX_LIFE` long.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

/// Connections at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The largest request head, bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client has to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last (a scraper that keeps its connection reconnects).
pub const MAX_LIFE: Duration = Duration::from_secs(60);

/// What the endpoint serves, as the decision thread last published it.
#[derive(Debug, Default)]
pub struct Published {
    /// What `/metrics` shows, as counted.
    pub stats: crate::engine::metrics::Stats,
    /// `/status.json`'s data, copied on the decision thread (None before the first).
    pub rows: Option<crate::engine::station::StatusRows>,
    /// The latest records shown.
    pub records: Vec<serde_json::Value>,
    /// `/status.json`, made of `rows` and `records` here, on the first request for it
    /// (every request after shares its bytes).
    status: std::sync::OnceLock<Bytes>,
    /// `/metrics`, made of `stats` and `rows` here, on the first request for it.
    metrics: std::sync::OnceLock<Bytes>,
}

impl Published {
    /// A snapshot.
    pub fn new(
        stats: crate::engine::metrics::Stats,
        rows: crate::engine::station::StatusRows,
        records: Vec<serde_json::Value>,
    ) -> Published {
        Published {
            stats,
            rows: Some(rows),
            records,
            status: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// `/metrics`: made once per snapshot, on this thread.
    fn metrics(&self) -> Bytes {
        self.metrics
            .get_or_init(|| self.stats.prometheus(self.rows.as_ref()).into())
            .clone()
    }

    /// `/status.json`: made once per snapshot, on this thread.
    fn status(&self) -> Bytes {
        self.status
            .get_or_init(|| {
                let Some(rows) = &self.rows else {
                    return Bytes::new();
                };
                let mut v = rows.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("records".into(), self.records.clone().into());
                }
                v.to_string().into()
            })
            .clone()
    }
}

/// The snapshot the decision thread swaps and the endpoint reads: a lock taken to
/// replace or clone an `Arc`, never per packet.
pub type Snapshot = Arc<Mutex<Arc<Published>>>;

/// The status page: plain HTML and a script that asks `/status.json` every second;
/// nothing fetched from anywhere else.
const PAGE: &str = include_str!("status.html");

/// Serves `snapshot` on `listener` from a thread of its own, until the `Endpoint` is
/// dropped.
pub fn serve(listener: TcpListener, snapshot: Snapshot) -> std::io::Result<Endpoint> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("trapgate-http".into())
        .spawn(move || {
            runtime.spawn(accept(listener, snapshot));
            // Until the gateway stops (or drops its end); then the runtime goes, and
            // with it the listener and every connection.
            let _ = runtime.block_on(stopped);
        })?;
    Ok(Endpoint {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The endpoint's thread: dropped, it closes the listener and its connections.
pub struct Endpoint {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(listener: TcpListener, snapshot: Snapshot) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of files, say: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let snapshot = Arc::clone(&snapshot);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let snapshot = Arc::clone(&snapshot);
                async move { Ok::<_, Infallible>(answer(&request, &snapshot)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(MAX_LIFE, connection).await;
            drop(slot);
        });
    }
}

/// The answer to `request`.
fn answer(request: &Request<Incoming>, snapshot: &Snapshot) -> Response<Full<Bytes>> {
    let published = snapshot.lock().map(|p| Arc::clone(&p)).unwrap_or_default();
    let reply = |status: StatusCode, kind: &'static str, body: Bytes| {
        let mut r = Response::new(Full::new(if request.method() == Method::HEAD {
            Bytes::new()
        } else {
            body
        }));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        r
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"read-only: GET or HEAD\n"),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match request.uri().path() {
        // Before the decision thread's first snapshot (its first second).
        "/status.json" | "/metrics" if published.rows.is_none() => {
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"starting: ask again in a second\n"),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        }
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            published.metrics(),
        ),
        "/status.json" => reply(StatusCode::OK, "application/json", published.status()),
        "/" => {
            let mut r = reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            );
            // Nothing from elsewhere: the page's own script and style, its own JSON.
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
                ),
            );
            r
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found: /, /status.json and /metrics are served\n"),
        ),
    }
}
