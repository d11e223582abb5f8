//! The HTTP endpoint of the live service: `/healthz`, `/readyz` and `/metrics`.
//!
//! A deliberately tiny HTTP/1.1 server on tokio, for probes and scrapes only: one request per
//! connection, always answered with `Connection: close` and a `Content-Length`. Only the
//! request line is parsed; the other header lines are read (up to [`MAX_HEAD`] bytes in all,
//! within [`READ_TIMEOUT`]) and ignored, and a request body is never read.
//!
//! | path | GET / HEAD |
//! |---|---|
//! | `/healthz` | 200 `ok` while the process runs (liveness) |
//! | `/readyz` | 200 `ready` when [`Health::ready`], else 503 naming what is missing |
//! | `/metrics` | 200, [`Metrics::encode`] in the OpenMetrics text format |
//!
//! Any other path is 404; another method on one of these paths is 405.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::live::metrics::Metrics;

/// The largest request head (request line and header lines) read; a longer one gets 431.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send the whole request head; a slower one gets 408.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing the response may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// After the response, how long and how much unread input is drained before the socket is
/// closed. Closing a socket with unread input makes the kernel send a reset, which can destroy
/// the response before the client reads it (a 431 in particular is sent with input unread).
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const LINGER_MAX: usize = 64 * 1024;

/// Connections served at once; a connection beyond this is closed at once. Each one can last
/// up to [`READ_TIMEOUT`] plus the write and linger timeouts, so this bounds the descriptors
/// a slow or hostile client can hold.
const MAX_CONNECTIONS: usize = 256;

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

/// Serves `router` until `shutdown` completes (temporary: axum's own server, until the
/// probes move onto axum too).
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves until `shutdown` completes; each connection handled in its own task; errors on one
/// connection are logged at debug and never stop the server.
///
/// When `shutdown` completes, the listener is closed and connections still in progress are
/// aborted. The result is an error only if the server cannot run at all; today that never
/// happens, as failures to accept are logged and retried.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, health, metrics, shutdown, READ_TIMEOUT).await
}

/// [`serve`] with another read timeout, so that a test need not wait five seconds.
async fn serve_with(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    read_timeout: Duration,
) -> io::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    // Connections are kept in a JoinSet so their number can be bounded, and so they are
    // aborted when the set is dropped on return.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            // Finished connections are reaped as they end, so the set holds only live ones.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = joined {
                    tracing::debug!(%error, "http: connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "http: too many connections, closing this one");
                        continue;
                    }
                    let (health, metrics) = (health.clone(), metrics.clone());
                    connections.spawn(async move {
                        if let Err(error) = handle(stream, &health, &metrics, read_timeout).await {
                            tracing::debug!(%peer, %error, "http: connection failed");
                        }
                    });
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

/// Reads one request, answers it and closes the connection.
async fn handle(
    mut stream: TcpStream,
    health: &Health,
    metrics: &Metrics,
    read_timeout: Duration,
) -> io::Result<()> {
    let response = match timeout(read_timeout, read_head(&mut stream)).await {
        Err(_elapsed) => Response::text(408, "request timeout\n"),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(Head::Closed)) => return Ok(()),
        Ok(Ok(Head::TooLarge)) => Response::text(431, "request header fields too large\n"),
        Ok(Ok(Head::Complete(head))) => match parse_request_line(&head) {
            Some((method, path)) => route(method, path, health, metrics),
            None => Response::text(400, "bad request\n"),
        },
    };
    let bytes = response.to_bytes();
    timeout(WRITE_TIMEOUT, stream.write_all(&bytes))
        .await
        .map_err(|_elapsed| io::Error::new(io::ErrorKind::TimedOut, "writing the response"))??;
    stream.shutdown().await?;
    linger(&mut stream).await;
    Ok(())
}

/// The outcome of reading a request head.
enum Head {
    /// The head, up to and including the blank line that ends it.
    Complete(Vec<u8>),
    /// [`MAX_HEAD`] bytes were read without the blank line.
    TooLarge,
    /// The client closed the connection before sending a request.
    Closed,
}

/// Reads until the blank line that ends the request head, at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    while len < MAX_HEAD {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return if len == 0 {
                Ok(Head::Closed)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the request head",
                ))
            };
        }
        // The terminator may straddle two reads, so the search starts a little before the
        // new bytes.
        let from = len.saturating_sub(3);
        len += n;
        if let Some(end) = head_end(&buf[from..len]) {
            buf.truncate(from + end);
            return Ok(Head::Complete(buf));
        }
    }
    Ok(Head::TooLarge)
}

/// The length of the head within `bytes`, through its blank line (`\r\n\r\n`, or `\n\n` from
/// a lenient client), if it is there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// The method and path of the request line (`GET /readyz?verbose HTTP/1.1` gives `GET` and
/// `/readyz`), or `None` if it is not an HTTP/1.x request line.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || !version.starts_with("HTTP/1.") {
        return None;
    }
    // The absolute form (`http://host/readyz`) is what a request through a proxy carries.
    let target = match target.split_once("://") {
        Some((_scheme, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => target,
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    path.starts_with('/').then_some((method, path))
}

/// The response to a well-formed request.
fn route(method: &str, path: &str, health: &Health, metrics: &Metrics) -> Response {
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if !known {
        return Response::text(404, "not found\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut response = Response::text(405, "method not allowed\n");
            response.allow = true;
            return response;
        }
    };
    let mut response = match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => match health.not_ready_reason() {
            None => Response::text(200, "ready\n"),
            Some(reason) => Response::text(503, reason),
        },
        _ => Response {
            status: 200,
            content_type: OPENMETRICS,
            body: {
                metrics.set_ready(health.ready());
                metrics.encode().into_bytes()
            },
            allow: false,
            head_only: false,
        },
    };
    response.head_only = head_only;
    response
}

/// A response, written in one piece.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Whether to send `Allow: GET, HEAD` (with a 405).
    allow: bool,
    /// A response to HEAD: the headers of the body, `Content-Length` included, but no body.
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: TEXT,
            body: body.as_bytes().to_vec(),
            allow: false,
            head_only: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len(),
        );
        if self.allow {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
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
        start_with(READ_TIMEOUT).await
    }

    async fn start_with(read_timeout: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::default());
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender ends the server too, so a test that ends stops its server.
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with(
            listener,
            health.clone(),
            metrics.clone(),
            shutdown,
            read_timeout,
        ));
        Server {
            addr,
            health,
            metrics,
            stop,
            task,
        }
    }

    /// Sends `request` as is and reads the response to EOF.
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
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        exchange(addr, request.as_bytes()).await.unwrap()
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
        assert_eq!(header(&response, "Connection"), Some("close"));
        assert_eq!(header(&response, "Content-Length"), Some("3"));
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
        let response = exchange(server.addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
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
        assert_eq!(status(&get(server.addr, "/nope").await), 404);
        assert_eq!(status(&get(server.addr, "/").await), 404);
    }

    #[tokio::test]
    async fn post_is_405() {
        let server = start().await;
        let response = exchange(
            server.addr,
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await
        .unwrap();
        assert_eq!(status(&response), 405);
        assert_eq!(header(&response, "Allow"), Some("GET, HEAD"));
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
        let server = start_with(Duration::from_millis(200)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        assert_eq!(status(&response), 408);
    }

    #[tokio::test]
    async fn shutdown_ends_serve() {
        let server = start().await;
        assert_eq!(status(&get(server.addr, "/healthz").await), 200);
        server.stop.send(()).unwrap();
        let result = timeout(Duration::from_secs(5), server.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        assert!(result.is_ok());
        // The listener is closed with it.
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[test]
    fn request_lines() {
        fn parse(s: &str) -> Option<(&str, &str)> {
            parse_request_line(s.as_bytes())
        }
        assert_eq!(
            parse("GET /readyz HTTP/1.1\r\n\r\n"),
            Some(("GET", "/readyz"))
        );
        assert_eq!(
            parse("HEAD /metrics?x#y HTTP/1.0\n\n"),
            Some(("HEAD", "/metrics"))
        );
        assert_eq!(
            parse("GET http://h:9090/healthz HTTP/1.1\r\n\r\n"),
            Some(("GET", "/healthz"))
        );
        assert_eq!(parse("GET /readyz\r\n\r\n"), None);
        assert_eq!(parse("GET  /readyz HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse("GET * HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse("GET /readyz HTTP/2\r\n\r\n"), None);
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
