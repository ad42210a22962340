//! Serving a router on a TCP listener, for both HTTP ports (CDS Hooks with the clinician view, and
//! `/metrics`): HTTP/1.1 by hyper itself rather than `axum::serve`, because `axum::serve` gives hyper
//! no timer, and without one hyper applies no header-read timeout: a client that trickles its
//! request head (or sends nothing) would hold its connection, and a file descriptor, for ever. The
//! routers' own time bounds start only once a request's head has been read.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Longest a client may take to send a request's line and headers, from when its connection is
/// accepted or its previous request answered (so an idle kept-alive connection is closed then too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses after an accept error other than a connection's own (most often the
/// process is out of file descriptors: accepting again at once would fail again at once).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How a port treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to send a request's line and headers.
    pub header_read_timeout: Duration,
    /// Connections held at once; more wait in the listen backlog until one closes, so that a flood
    /// of connections cannot take every file descriptor the process has (its FHIR connections,
    /// audit spill and other ports need theirs).
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` completes, then stops accepting and waits for the
/// open connections to finish what they are doing. Each request carries the peer's address as
/// `ConnectInfo<SocketAddr>`. A connection whose request head is not all read within
/// `limits.header_read_timeout` is closed; past `limits.max_connections` none is accepted until
/// one closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut stop => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_the_connections_own(&e) => continue,
            Err(e) => {
                // The error is the listener's (no client's data in it).
                tracing::error!(error = %e, "cannot accept an HTTP connection; pausing");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    () = &mut stop => break,
                }
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        // A connection's error (a timeout, a reset, a malformed request) ends that connection only;
        // its slot is free when it ends.
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that went away before it was accepted: nothing is wrong with the
/// listener.
fn is_the_connections_own(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;

    /// Bound on anything a test waits for, so that a regression fails rather than hangs.
    pub(crate) const GUARD: Duration = Duration::from_secs(20);
    pub(crate) const SHORT_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
    /// The ports' limits in tests: a short header-read timeout.
    pub(crate) const SHORT_LIMITS: Limits = Limits {
        header_read_timeout: SHORT_HEADER_TIMEOUT,
        max_connections: 64,
    };

    /// Reads until the server closes the connection; what it sent before, as text. A reset counts
    /// as closed.
    pub(crate) async fn read_until_closed(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        let closed = tokio::time::timeout(GUARD, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) => return,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                    Err(e) => panic!("reading the answer failed: {e}"),
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server never closed the connection");
        String::from_utf8_lossy(&received).into_owned()
    }

    /// Connects, sends a request head cut short, and waits for the server to close the connection.
    pub(crate) async fn trickle_a_request_head(address: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        read_until_closed(&mut stream).await
    }

    /// Sends one whole request with `Connection: close` and returns the whole answer.
    pub(crate) async fn request(address: SocketAddr, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!(
                    "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        read_until_closed(&mut stream).await
    }

    struct Serving {
        address: SocketAddr,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    /// A router that answers `/peer` with the address the request came from, and `/slow` after
    /// `slow` (telling `slow_started` when it starts).
    async fn start_with(limits: Limits, slow: Duration, slow_started: Arc<Notify>) -> Serving {
        let router = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(move || async move {
                    slow_started.notify_one();
                    tokio::time::sleep(slow).await;
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        Serving {
            address,
            stop,
            task,
        }
    }

    async fn start(
        header_read_timeout: Duration,
        slow: Duration,
        slow_started: Arc<Notify>,
    ) -> Serving {
        let limits = Limits {
            header_read_timeout,
            max_connections: 64,
        };
        start_with(limits, slow, slow_started).await
    }

    #[tokio::test]
    async fn a_request_head_trickled_in_is_cut_off_after_the_header_read_timeout() {
        let server = start(SHORT_HEADER_TIMEOUT, Duration::ZERO, Arc::default()).await;
        let answer = trickle_a_request_head(server.address, "/peer").await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
        let server = start(SHORT_HEADER_TIMEOUT, Duration::ZERO, Arc::default()).await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        let answer = read_until_closed(&mut stream).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_whole_request_is_answered_and_its_handler_sees_the_peer_address() {
        let server = start(SHORT_HEADER_TIMEOUT, Duration::ZERO, Arc::default()).await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        let own = stream.local_addr().unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&own.to_string()), "{answer}");
    }

    #[tokio::test]
    async fn stopping_refuses_new_connections_and_lets_a_request_in_flight_finish() {
        let slow_started = Arc::new(Notify::new());
        // A header-read timeout far past the guard: only the shutdown can close the idle connection.
        let server = start(
            Duration::from_secs(600),
            Duration::from_millis(500),
            slow_started.clone(),
        )
        .await;
        let mut in_flight = TcpStream::connect(server.address).await.unwrap();
        in_flight
            .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        // An idle kept-alive connection does not hold the shutdown up.
        let mut idle = TcpStream::connect(server.address).await.unwrap();
        idle.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0_u8; 12];
        tokio::time::timeout(GUARD, idle.read_exact(&mut first))
            .await
            .expect("the idle connection's request is answered")
            .unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        tokio::time::timeout(GUARD, slow_started.notified())
            .await
            .expect("the slow request is being answered");
        server.stop.send(()).unwrap();
        let answer = read_until_closed(&mut in_flight).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(GUARD, server.task)
            .await
            .expect("serving ends once its connections are done")
            .unwrap();
        read_until_closed(&mut idle).await;
        assert!(
            TcpStream::connect(server.address).await.is_err(),
            "the listener is closed"
        );
    }

    #[tokio::test]
    async fn past_the_connection_limit_a_client_waits_until_a_connection_closes() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(600),
            max_connections: 1,
        };
        let server = start_with(limits, Duration::ZERO, Arc::default()).await;
        let mut first = TcpStream::connect(server.address).await.unwrap();
        first
            .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0_u8; 12];
        tokio::time::timeout(GUARD, first.read_exact(&mut answer))
            .await
            .expect("the first connection is answered")
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");

        // The first connection stays open: the second is left in the backlog, unanswered.
        let mut second = TcpStream::connect(server.address).await.unwrap();
        second
            .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0_u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut byte)).await;
        assert!(
            early.is_err(),
            "answered while the first connection was open"
        );

        drop(first);
        let answer = read_until_closed(&mut second).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
