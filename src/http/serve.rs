//! The listener's loop: the router on hyper's HTTP/1 connections, with a limit on how long a
//! request's head may take.
//!
//! `axum::serve` gives hyper no timer, so a client that connects and then sends its request
//! line a byte a minute, or nothing, holds a socket and a task for as long as it likes: a few
//! thousand of those and the process is out of file descriptors, `/metrics` and `/readyz`
//! included. Here hyper closes a connection whose request head has not arrived within
//! [`HEADER_READ_TIMEOUT`] (an idle keep-alive connection too: browsers and Prometheus open a
//! new one). Responses are not limited, so the board's event streams run for as long as
//! they are read. Otherwise this is what `axum::serve` does: accept errors such as `EMFILE`
//! pause accepting for a second, and a graceful shutdown stops accepting and waits for the
//! open connections to finish.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// hyper's own default once it has a timer; nginx waits 60 s (`client_header_timeout`).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop`, then waits for the open connections to end.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    header_read_timeout: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "Accepting an HTTP connection failed; accepting again in a second.");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away, or a head that timed out, ends only its connection.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that was never established: accept the next.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Server {
        addr: std::net::SocketAddr,
        stop: CancellationToken,
        served: tokio::task::JoinHandle<()>,
    }

    async fn started(timeout: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/stream", get(slow_stream));
        let served = tokio::spawn(serve(listener, app, stop.clone(), timeout));
        Server { addr, stop, served }
    }

    /// A response that takes longer than the tests' head timeout: five parts, 100 ms apart.
    async fn slow_stream() -> axum::body::Body {
        let parts = futures::stream::unfold(0, |i| async move {
            if i == 5 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, std::io::Error>(format!("part {i}\n")), i + 1))
        });
        axum::body::Body::from_stream(parts)
    }

    /// Reads until the server closes the connection; what it sent before.
    async fn until_closed(client: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test]
    async fn a_request_head_that_does_not_arrive_in_time_loses_its_connection() {
        let addr = started(Duration::from_millis(300)).await.addr;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Without the timeout this read would never end; the test's own limit is far above it.
        let closed = tokio::time::timeout(Duration::from_secs(20), until_closed(&mut slow)).await;
        let answer = closed.expect("the server closed the connection of a head that never ended");
        assert!(!answer.contains("200 OK"), "{answer}");

        // A client that sends its head answers as before, on the same server.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
    }

    #[tokio::test]
    async fn a_response_may_take_longer_than_a_head_may() {
        // The board's event streams run for hours: the limit is on the request's head only.
        let addr = started(Duration::from_millis(200)).await.addr;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("part 4\n"), "the stream was cut: {answer}");
        assert!(
            answer.ends_with("0\r\n\r\n"),
            "the stream did not end: {answer}"
        );
    }

    #[tokio::test]
    async fn a_shutdown_closes_idle_connections_and_ends() {
        let server = started(HEADER_READ_TIMEOUT).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 15];
        idle.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
        server.stop.cancel();
        // The keep-alive connection, idle now, is closed by the shutdown (not left for its
        // client to close), and then the server has ended.
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            until_closed(&mut idle).await;
            server.served.await.unwrap();
        })
        .await;
        assert!(
            ended.is_ok(),
            "the shutdown closed the idle connection and ended"
        );
    }
}
