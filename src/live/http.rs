//! The HTTP endpoint of the live service: `/healthz`, `/readyz` and `/metrics`.
//!
//! The routes are an [`axum::Router`] ([`probes`]); [`serve_router`] serves any router over
//! HTTP/1.1 with hyper, one task per connection, with the limits a small endpoint on a
//! service port needs:
//!
//! - a client has [`READ_TIMEOUT`] to send each request head (hyper's header read timeout);
//!   one that stops in the middle of a head gets 408, and an idle keep-alive connection is
//!   closed after as long;
//! - a request head over [`MAX_HEAD`] bytes gets 431, one that does not parse gets 400
//!   (both answered by hyper, which then closes the connection);
//! - a request has [`REQUEST_TIMEOUT`] from its head to its response, reading its body
//!   included, else 408; a write that makes no progress for [`WRITE_TIMEOUT`] drops the
//!   connection;
//! - at most [`MAX_CONNECTIONS`] connections are served at once; one beyond is closed at once.
//!
//! Connections are kept alive between requests (HTTP/1.1), unless the client asks to close.
//!
//! | path | GET / HEAD |
//! |---|---|
//! | `/healthz` | 200 `ok` while the process runs (liveness) |
//! | `/readyz` | 200 `ready` when [`Health::ready`], else 503 naming what is missing |
//! | `/metrics` | 200, [`Metrics::encode`] in the OpenMetrics text format |
//!
//! Any other path is 404 and another method on a known path is 405 (with `Allow`), both short
//! plain text, for whatever router is served. A HEAD answers with the `Content-Length` of the
//! GET and no body; a query string is ignored.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Sleep, timeout};

use crate::live::metrics::Metrics;

/// The largest request head (request line and header lines) read; a longer one gets 431.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send a whole request head; one that has begun and is not done
/// by then gets 408. An idle keep-alive connection is closed after as long.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may take from its head to its response, its body read included (the
/// forms of the console); a slower one gets 408. Generous because a console report replays
/// the journal; the connection cap bounds what slow clients can hold.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a write to the client may make no progress before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// After a connection ends, how long and how much unread input is drained before the socket
/// is closed. Closing a socket with unread input makes the kernel send a reset, which can
/// destroy the last response before the client reads it (a 431 in particular is sent with
/// input unread).
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const LINGER_MAX: usize = 64 * 1024;

/// Connections served at once; a connection beyond this is closed at once. Together with the
/// timeouts this bounds the descriptors a slow or hostile client can hold.
const MAX_CONNECTIONS: usize = 256;

/// When shutdown begins, how long connections in progress have to finish their request
/// before they are aborted (idle keep-alive connections are closed at once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// What `/readyz` reports: the stages of the service that must all be done (and shutdown not
/// begun) before it should receive traffic.
///
/// Each flag is set by the part of the service that owns the stage. The flags are independent
/// facts read on their own, so relaxed atomics are enough.
#[derive(Debug, Default)]
pub struct Health {
    connected: AtomicBool,
    recovered: AtomicBool,
    caught_up: AtomicBool,
    stopping: AtomicBool,
    standby: AtomicBool,
    /// The console's board, refreshed by whoever holds the engine. (Here because, like the
    /// flags, it is the instance's state as others see it, shared the same way.)
    pub(crate) board: Arc<crate::console::BoardCell>,
}

impl Health {
    /// Whether the service is connected to RabbitMQ.
    pub(crate) fn set_connected(&self, v: bool) {
        self.connected.store(v, Ordering::Relaxed);
    }

    /// Whether the journal has been recovered (read back and fed to the engine).
    pub(crate) fn set_recovered(&self, v: bool) {
        self.recovered.store(v, Ordering::Relaxed);
    }

    /// Whether the decisions recovered from the outbox (journaled but never confirmed) have
    /// all been published.
    pub(crate) fn set_caught_up(&self, v: bool) {
        self.caught_up.store(v, Ordering::Relaxed);
    }

    /// Whether this instance is a hot standby (the stream journal has another writer).
    pub(crate) fn set_standby(&self, v: bool) {
        self.standby.store(v, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub(crate) fn set_stopping(&self, v: bool) {
        self.stopping.store(v, Ordering::Relaxed);
    }

    /// Connected, recovered, caught up and not stopping.
    pub fn ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// What keeps the service from being ready, as the line `/readyz` answers with, or `None`
    /// when it is ready.
    ///
    /// Shutdown is named first, since it is final; then the start-up stages in the order they
    /// are done (journal, connection, outbox), so the reason names the stage in progress.
    pub(crate) fn not_ready_reason(&self) -> Option<&'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            Some("shutting down\n")
        } else if !self.recovered.load(Ordering::Relaxed) {
            Some("recovering the journal\n")
        } else if !self.connected.load(Ordering::Relaxed) {
            Some("not connected to RabbitMQ\n")
        } else if self.standby.load(Ordering::Relaxed) {
            Some("standby: another instance writes the journal stream\n")
        } else if !self.caught_up.load(Ordering::Relaxed) {
            Some("publishing decisions recovered from the outbox\n")
        } else {
            None
        }
    }
}

/// The probe routes: `/healthz`, `/readyz` and `/metrics`, GET and HEAD.
pub(crate) fn probes(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    let health_m = health.clone();
    Router::new()
        .route(
            "/healthz",
            get(|| std::future::ready(text(StatusCode::OK, "ok\n"))),
        )
        .route(
            "/readyz",
            get(move || {
                std::future::ready(match health.not_ready_reason() {
                    None => text(StatusCode::OK, "ready\n"),
                    Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason),
                })
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let headers = [(CONTENT_TYPE, OPENMETRICS), (CACHE_CONTROL, "no-store")];
                metrics.set_ready(health_m.ready());
                std::future::ready((headers, metrics.encode()).into_response())
            }),
        )
}

/// A short plain-text response that is not to be cached.
fn text(status: StatusCode, body: &'static str) -> Response {
    let headers = [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, "no-store")];
    (status, headers, body).into_response()
}

/// Serves the probe routes until `shutdown` completes: [`probes`] on [`serve_router`].
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_router(listener, probes(health, metrics), shutdown).await
}

/// Serves `router` on `listener` with the limits of this module until `shutdown` completes;
/// each connection in its own task; errors on one connection are logged at debug and never
/// stop the server.
///
/// The fallbacks of `router` are set here: 404 for an unknown path (replacing any fallback
/// `router` has) and 405 for another method on a known path (where the route has no fallback
/// of its own).
///
/// When `shutdown` completes, the listener is closed, idle connections are closed, and
/// connections with a request in progress have [`SHUTDOWN_GRACE`] to finish it before they
/// are aborted. The result is an error only if the server cannot run at all; today that
/// never happens, as failures to accept are logged and retried.
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, shutdown, Limits::default()).await
}

/// The limits a test may shorten.
#[derive(Clone, Copy, Debug)]
struct Limits {
    read_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_timeout: READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// [`serve_router`] with other limits, so that a test need not wait five seconds or open
/// 256 connections.
async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let router = router
        .fallback(|| std::future::ready(text(StatusCode::NOT_FOUND, "not found\n")))
        .method_not_allowed_fallback(|| {
            std::future::ready(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"))
        });
    let mut shutdown = pin!(shutdown);
    let (stop, stopped) = watch::channel(false);
    // Connections are kept in a JoinSet so their number can be bounded, and so they are
    // aborted when the set is dropped on return.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Finished connections are reaped as they end, so the set holds only live ones.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while let Some(joined) = connections.try_join_next() {
                        log_join(joined);
                    }
                    if connections.len() >= limits.max_connections {
                        tracing::debug!(%peer, "http: too many connections, closing this one");
                        continue;
                    }
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(connection(stream, peer, service, limits, stopped.clone()));
                }
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "http: accept failed");
                }
                Err(error) => {
                    // Out of descriptors or memory: accept would fail again at once, so wait
                    // a little instead of spinning.
                    tracing::warn!(%error, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    stop.send_replace(true);
    let finish = async {
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    };
    if timeout(SHUTDOWN_GRACE, finish).await.is_err() {
        tracing::debug!(
            left = connections.len(),
            "http: aborting the connections still in progress"
        );
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::debug!(%error, "http: connection task failed");
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Serves the requests of one connection until it ends, or until `stopped` turns true and
/// the request in progress, if any, is answered.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: TowerToHyperService<Router>,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let mut stream = WriteTimeout::new(stream, WRITE_TIMEOUT);
    // Whether a request head has come on this connection (hyper then calls the service).
    let requested = Arc::new(AtomicBool::new(false));
    let requested_here = requested.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        requested_here.store(true, Ordering::Relaxed);
        let response = router.call(request);
        async move {
            match timeout(limits.request_timeout, response).await {
                Ok(response) => response,
                Err(_elapsed) => {
                    Ok::<_, Infallible>(text(StatusCode::REQUEST_TIMEOUT, "request timeout\n"))
                }
            }
        }
    });
    let result = {
        let mut conn = pin!(
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .max_header_size(MAX_HEAD)
                .serve_connection(TokioIo::new(&mut stream), service)
        );
        tokio::select! {
            result = conn.as_mut() => result,
            // An error means the server is gone: stop all the same.
            () = async {
                let _ = stopped.wait_for(|stop| *stop).await;
            } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    match result {
        Ok(()) => {}
        // Hyper closes without an answer a connection that sends no complete request head in
        // time. On a new connection that is a client too slow (or silent): it gets a 408, as
        // it did from the server before hyper. A kept-alive connection is only closed, idle
        // or not: a 408 there could cross a request on its way and be taken for its answer.
        Err(error) if error.is_timeout() && !requested.load(Ordering::Relaxed) => {
            // The stream's own write timeout bounds this.
            if let Err(error) = stream.write_all(REQUEST_TIMEOUT_RESPONSE).await {
                tracing::debug!(%peer, %error, "http: writing the 408 failed");
            }
        }
        Err(error) => tracing::debug!(%peer, %error, "http: connection failed"),
    }
    let _ = stream.shutdown().await;
    // On shutdown, no lingering: the answers are out, and serve is waiting.
    if !*stopped.borrow() {
        linger(&mut stream.inner).await;
    }
}

/// The answer to a request head not complete within the read timeout, sent by hand since
/// hyper only closes the connection.
const REQUEST_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
    content-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n\
    cache-control: no-store\r\nconnection: close\r\n\r\nrequest timeout\n";

/// Discards what the client still sends, until it closes, for at most [`LINGER_TIMEOUT`] and
/// [`LINGER_MAX`] bytes, so that closing does not reset the connection under the response.
async fn linger(stream: &mut TcpStream) {
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = timeout(LINGER_TIMEOUT, drain).await;
}

/// A stream whose writes (and flushes and shutdown) fail with `TimedOut` once one has made
/// no progress for the time given; reads are passed through. Hyper has no write timeout of
/// its own.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Set while a write is pending: when it fires, the write fails.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            deadline: None,
        }
    }

    /// `poll`, the outcome of a write, unless it has been pending for too long.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.deadline = None;
            return poll;
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.deadline = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "writing to the client",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    struct Server {
        addr: SocketAddr,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<io::Result<()>>,
    }

    async fn start() -> Server {
        start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::default());
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender ends the server too, so a test that ends stops its server.
            let _ = stopped.await;
        };
        let router = probes(health.clone(), metrics.clone());
        let task = tokio::spawn(serve_with(listener, router, shutdown, limits));
        Server {
            addr,
            health,
            metrics,
            stop,
            task,
        }
    }

    /// Sends `request` as is and reads the response to EOF (so a well-formed request must ask
    /// for `Connection: close`).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut response = Vec::new();
        timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .expect("the server closes the connection")?;
        Ok(String::from_utf8(response).unwrap())
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        exchange(addr, request.as_bytes()).await.unwrap()
    }

    /// Reads one response with a `Content-Length` from a connection kept open.
    async fn read_response(stream: &mut TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("a response")
                .unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&bytes));
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8(bytes.clone()).unwrap();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = header(&text, "Content-Length").unwrap().parse().unwrap();
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 "));
                    return text;
                }
            }
        }
    }

    fn status(response: &str) -> u16 {
        response
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"))
    }

    fn body(response: &str) -> &str {
        response.split_once("\r\n\r\n").unwrap().1
    }

    fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
        let head = response.split_once("\r\n\r\n").unwrap().0;
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let server = start().await;
        let response = get(server.addr, "/healthz").await;
        assert_eq!(status(&response), 200);
        assert_eq!(body(&response), "ok\n");
        // Asked to close, the server says so.
        assert_eq!(header(&response, "Connection"), Some("close"));
        assert_eq!(header(&response, "Content-Length"), Some("3"));
        assert_eq!(header(&response, "Content-Type"), Some(TEXT));
        assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
    }

    #[tokio::test]
    async fn keep_alive_serves_requests_in_turn() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let first = read_response(&mut stream).await;
        assert_eq!((status(&first), body(&first)), (200, "ok\n"));
        assert_eq!(header(&first, "Connection"), None);
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut second = Vec::new();
        stream.read_to_end(&mut second).await.unwrap();
        let second = String::from_utf8(second).unwrap();
        assert_eq!(
            (status(&second), body(&second)),
            (503, "recovering the journal\n")
        );
    }

    #[tokio::test]
    async fn readyz_names_what_is_missing_until_ready() {
        let server = start().await;
        let h = &server.health;
        let response = get(server.addr, "/readyz").await;
        assert_eq!(status(&response), 503);
        assert_eq!(body(&response), "recovering the journal\n");

        h.set_recovered(true);
        let response = get(server.addr, "/readyz").await;
        assert_eq!(
            (status(&response), body(&response)),
            (503, "not connected to RabbitMQ\n")
        );

        h.set_connected(true);
        let response = get(server.addr, "/readyz").await;
        assert_eq!(
            (status(&response), body(&response)),
            (503, "publishing decisions recovered from the outbox\n")
        );

        h.set_caught_up(true);
        assert!(h.ready());
        let response = get(server.addr, "/readyz").await;
        assert_eq!((status(&response), body(&response)), (200, "ready\n"));

        h.set_stopping(true);
        assert!(!h.ready());
        let response = get(server.addr, "/readyz").await;
        assert_eq!(
            (status(&response), body(&response)),
            (503, "shutting down\n")
        );
    }

    #[tokio::test]
    async fn metrics_are_served() {
        let server = start().await;
        server.metrics.event_in("ice.detainer.issued");
        let response = get(server.addr, "/metrics").await;
        assert_eq!(status(&response), 200);
        assert_eq!(header(&response, "Content-Type"), Some(OPENMETRICS));
        let text = body(&response);
        assert!(
            text.contains(r#"handoff_events_in_total{type="ice.detainer.issued"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(
            header(&response, "Content-Length"),
            Some(text.len().to_string().as_str())
        );
    }

    #[tokio::test]
    async fn head_has_the_length_but_no_body() {
        let server = start().await;
        let response = exchange(
            server.addr,
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(status(&response), 200);
        assert_eq!(header(&response, "Content-Length"), Some("3"));
        assert_eq!(body(&response), "");
    }

    #[tokio::test]
    async fn query_string_is_ignored() {
        let server = start().await;
        assert_eq!(status(&get(server.addr, "/healthz?x=1").await), 200);
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let server = start().await;
        let response = get(server.addr, "/nope").await;
        assert_eq!((status(&response), body(&response)), (404, "not found\n"));
        assert_eq!(status(&get(server.addr, "/").await), 404);
        // A POST to an unknown path too.
        let response = exchange(
            server.addr,
            b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(status(&response), 404);
    }

    #[tokio::test]
    async fn post_is_405() {
        let server = start().await;
        let response = exchange(
            server.addr,
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await
        .unwrap();
        assert_eq!(status(&response), 405);
        assert_eq!(body(&response), "method not allowed\n");
        // axum lists the methods without a space after the comma (the same list to HTTP).
        assert_eq!(header(&response, "Allow"), Some("GET,HEAD"));
    }

    #[tokio::test]
    async fn garbage_is_400() {
        let server = start().await;
        let response = exchange(server.addr, b"hello\r\n\r\n").await.unwrap();
        assert_eq!(status(&response), 400);
        let response = exchange(server.addr, b"GET /healthz SPDY/3\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status(&response), 400);
    }

    #[tokio::test]
    async fn request_lines() {
        let server = start().await;
        let ask = |line: &'static str| async move {
            let request = format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n");
            let response = exchange(server.addr, request.as_bytes()).await.unwrap();
            // An HTTP/1.0 request is answered in HTTP/1.0 (the old server said 1.1 to all).
            let response = response.replacen("HTTP/1.0 ", "HTTP/1.1 ", 1);
            status(&response)
        };
        assert_eq!(ask("GET /readyz HTTP/1.1").await, 503);
        assert_eq!(ask("HEAD /metrics?x HTTP/1.0").await, 200);
        // The absolute form is what a request through a proxy carries.
        assert_eq!(ask("GET http://h:9090/healthz HTTP/1.1").await, 200);
        assert_eq!(ask("GET /readyz").await, 400);
        assert_eq!(ask("GET  /readyz HTTP/1.1").await, 400);
        assert_eq!(ask("GET /readyz HTTP/2").await, 400);
        // The asterisk form names no resource here.
        assert_eq!(ask("GET * HTTP/1.1").await, 404);
    }

    #[tokio::test]
    async fn oversized_head_is_refused_and_the_server_goes_on() {
        let server = start().await;
        let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
        request.resize(request.len() + 9 * 1024, b'a');
        request.extend_from_slice(b"\r\n\r\n");
        match exchange(server.addr, &request).await {
            Ok(response) => assert_eq!(status(&response), 431, "{response}"),
            // A reset is acceptable too: what matters is that the server survives.
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        }
        assert_eq!(status(&get(server.addr, "/healthz").await), 200);
    }

    #[tokio::test]
    async fn silent_client_does_not_block_others() {
        let server = start().await;
        // A client that connects and sends nothing holds only its own connection.
        let _silent = TcpStream::connect(server.addr).await.unwrap();
        let mut partial = TcpStream::connect(server.addr).await.unwrap();
        partial
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        assert_eq!(status(&get(server.addr, "/healthz").await), 200);
    }

    #[tokio::test]
    async fn slow_client_gets_408() {
        let server = start_with(Limits {
            read_timeout: Duration::from_millis(200),
            ..Limits::default()
        })
        .await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        assert_eq!(status(&response), 408);
        assert_eq!(body(&response), "request timeout\n");
    }

    #[tokio::test]
    async fn connections_without_a_request_are_closed_after_the_read_timeout() {
        let server = start_with(Limits {
            read_timeout: Duration::from_millis(200),
            ..Limits::default()
        })
        .await;
        // Silent from the start: a 408, as for a client that began its head.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let mut response = Vec::new();
        timeout(Duration::from_secs(5), silent.read_to_end(&mut response))
            .await
            .expect("closed")
            .unwrap();
        assert_eq!(status(&String::from_utf8(response).unwrap()), 408);
        // Silent after a request kept alive: closed without a word.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status(&read_response(&mut idle).await), 200);
        let mut rest = Vec::new();
        timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
            .await
            .expect("closed")
            .unwrap();
        assert_eq!(rest, b"");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_at_once() {
        let server = start_with(Limits {
            max_connections: 2,
            ..Limits::default()
        })
        .await;
        // Two silent clients hold the two places (for up to the 5 s read timeout); they are
        // accepted in order, before the third.
        let first = TcpStream::connect(server.addr).await.unwrap();
        let _second = TcpStream::connect(server.addr).await.unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        match exchange(server.addr, request).await {
            Ok(response) => assert_eq!(response, "", "served beyond the cap"),
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        }
        // A place freed is taken again.
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            if let Ok(response) = exchange(server.addr, request).await
                && !response.is_empty()
            {
                assert_eq!(status(&response), 200);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no place freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn slow_body_gets_408() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/form",
            axum::routing::post(|body: String| async move { body }),
        );
        let limits = Limits {
            request_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_with(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            limits,
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let mut response = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .expect("the server closes the connection")
            .unwrap();
        let response = String::from_utf8(response).unwrap();
        assert_eq!(status(&response), 408, "{response}");
    }

    #[tokio::test]
    async fn shutdown_ends_serve() {
        let server = start().await;
        assert_eq!(status(&get(server.addr, "/healthz").await), 200);
        // An idle keep-alive connection does not hold shutdown up.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status(&read_response(&mut idle).await), 200);
        server.stop.send(()).unwrap();
        let result = timeout(Duration::from_secs(1), server.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        assert!(result.is_ok());
        // The listener is closed with it.
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn routes_added_to_the_router_get_the_same_limits_and_fallbacks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/form",
            axum::routing::post(|body: String| async move { format!("got {body}") }),
        );
        let (_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_router(listener, router, async move {
            let _ = stopped.await;
        }));
        let response = exchange(
            addr,
            b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 3\r\nConnection: close\r\n\r\na=1",
        )
        .await
        .unwrap();
        assert_eq!((status(&response), body(&response)), (200, "got a=1"));
        let response = get(addr, "/form").await;
        assert_eq!(
            (status(&response), body(&response)),
            (405, "method not allowed\n")
        );
        assert_eq!(header(&response, "Allow"), Some("POST"));
        let response = get(addr, "/healthz").await;
        assert_eq!((status(&response), body(&response)), (404, "not found\n"));
    }
}
