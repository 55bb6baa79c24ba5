//! The HTTP/1.1 listener: accepts connections and serves the router on each until shutdown.
//!
//! Not `axum::serve`, for one measured reason: its version sniffing (HTTP/1 or prior-knowledge
//! HTTP/2) reads the first 24 bytes of every connection on its own and hands them to hyper,
//! whose 8 KiB read buffer then has to grow for the rest of the request head and doubles to
//! 16 KiB, for the life of the connection. With thousands of open streams that was a quarter
//! of sluice's memory. Clients reach the gateway over HTTP/1.1 (browsers speak HTTP/2 only
//! over TLS, which ends at the load balancer), so the listener serves HTTP/1.1 only and hyper
//! reads each connection straight into one 8 KiB buffer.
//!
//! Accepted connections are served on the event-loop threads of [`super::shards`].

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use super::shards::Shards;
use super::stack::App;

/// Connections the kernel may hold ready for `accept` (it caps this at `net.core.somaxconn`,
/// 4,096 by default). tokio's own bind asks for 128 (mio's choice, the standard library's):
/// when a burst of clients connects at once (a load balancer reconnecting, a load tool
/// opening connections while requests queue) faster than the accept loop drains them, every
/// connection past that had its SYN dropped and waited a second for the client to send it
/// again. Seen in the benchmark at half of the passthrough's saturation: hundreds of such
/// retransmitted SYNs in a 10 s run. The mock AI service listens the same way, as real
/// services do (uvicorn and gunicorn ask for 2,048).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's bind sets).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` fires; then stops accepting, asks every open
/// connection to close after its current response, and returns once all have closed.
///
/// Connections are accepted here and each is served on one of `shards` for its whole life.
/// Each request carries the peer's [`ConnectInfo<SocketAddr>`], as with axum's
/// `into_make_service_with_connect_info`.
pub async fn serve(
    mut listener: TcpListener,
    app: impl App,
    shutdown: CancellationToken,
    shards: &Shards,
) {
    // No timer, hence no header read timeout: hyper's would also close idle keep-alive
    // connections after 30 s, racing a load balancer that reuses them for longer (a 502 for
    // the request caught in between). Idle connections stay open, as with `axum::serve`.
    let http = http1::Builder::new();
    let connections = GracefulShutdown::new();
    loop {
        // `accept` retries by itself on per-connection errors and backs off when out of
        // descriptors, so the loop never ends on a bad client.
        let (tcp, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = shutdown.cancelled() => break,
        };
        // The socket moves to the shard's runtime, which registers it with its own poller.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(err) => {
                tracing::debug!(error = %err, "cannot hand over an accepted connection");
                continue;
            }
        };
        let service = ServiceBuilder::new()
            .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)))
            .map_request(|request: Request<Incoming>| request.map(Body::new))
            .service(app.clone());
        let watcher = connections.watcher();
        let http = http.clone();
        shards.spawn(async move {
            let tcp = match TcpStream::from_std(tcp) {
                Ok(tcp) => tcp,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot register an accepted connection");
                    return;
                }
            };
            // Without TCP_NODELAY, a response written in two pieces (head, then body) waits
            // for the client's delayed ACK: ~40 ms added to every request on a fresh
            // connection.
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
            let connection =
                http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
            if let Err(err) = watcher.watch(connection).await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// How many of `clients` connecting to `addr` at once (nothing accepting) are still waiting
/// after 800 ms: those whose SYN the kernel dropped, to be sent again a second later.
#[cfg(test)]
pub(crate) async fn connects_left_waiting(addr: SocketAddr, clients: usize) -> usize {
    let connects = (0..clients).map(|_| {
        tokio::time::timeout(
            std::time::Duration::from_millis(800),
            TcpStream::connect(addr),
        )
    });
    let results = futures_util::future::join_all(connects).await;
    let failed: Vec<_> = results
        .iter()
        .flatten()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(failed.is_empty(), "connects failed: {:?}", failed.first());
    results.iter().filter(|r| r.is_err()).count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::num::NonZeroUsize;
    use std::sync::Arc;

    use std::thread;

    use axum::routing::get;

    use super::*;

    /// More clients than tokio's default backlog (128), and than the 1,024 of older tokio
    /// versions, connect at once while nothing accepts: every one is queued at once.
    #[tokio::test]
    async fn a_burst_of_connections_beyond_tokios_default_backlog_is_queued_at_once() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let waiting = connects_left_waiting(listener.local_addr().unwrap(), 1_500).await;
        assert_eq!(waiting, 0, "connections left waiting for a SYN retransmit");
        drop(listener);
    }

    #[tokio::test]
    async fn connections_are_served_on_the_shard_threads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/",
            get(|| async { thread::current().name().unwrap_or_default().to_owned() }),
        );
        let shards = Arc::new(Shards::start(NonZeroUsize::new(2).unwrap()).unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let (shards, shutdown) = (shards.clone(), shutdown.clone());
            async move { serve(listener, app, shutdown, &shards).await }
        });
        let mut served_by = Vec::new();
        for _ in 0..2 {
            // A client per call: a new connection each time, handed to the next shard.
            let client = reqwest::Client::new();
            served_by.push(client.get(&url).send().await.unwrap().text().await.unwrap());
        }
        served_by.sort();
        assert_eq!(served_by, ["sluice-shard-0", "sluice-shard-1"]);
        shutdown.cancel();
        server.await.unwrap();
        Arc::into_inner(shards).unwrap().stop().await;
    }
}
