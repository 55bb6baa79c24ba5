//! The HTTP/1.1 listener: accepts connections and serves the router on each until shutdown.
//!
//! Not `axum::serve`, for one measured reason: its version sniffing (HTTP/1 or prior-knowledge
//! HTTP/2) reads the first 24 bytes of every connection on its own and hands them to hyper,
//! whose 8 KiB read buffer then has to grow for the rest of the request head and doubles to
//! 16 KiB, for the life of the connection. With thousands of open streams that was a quarter
//! of sluice's memory. Clients reach the gateway over HTTP/1.1 (browsers speak HTTP/2 only
//! over TLS, which ends at the load balancer), so the listener serves HTTP/1.1 only and hyper
//! reads each connection straight into one 8 KiB buffer.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::{Listener, ListenerExt};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// Serves `app` on `listener` until `shutdown` fires; then stops accepting, asks every open
/// connection to close after its current response, and returns once all have closed.
///
/// Each request carries the peer's [`ConnectInfo<SocketAddr>`], as with axum's
/// `into_make_service_with_connect_info`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    // Without TCP_NODELAY, a response written in two pieces (head, then body) waits for the
    // client's delayed ACK: ~40 ms added to every request on a fresh connection.
    let mut listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    // No timer, hence no header read timeout: hyper's would also close idle keep-alive
    // connections after 30 s, racing a load balancer that reuses them for longer (a 502 for
    // the request caught in between). Idle connections stay open, as with `axum::serve`.
    let http = http1::Builder::new();
    let connections = GracefulShutdown::new();
    loop {
        // `accept` retries by itself on per-connection errors and backs off when out of
        // descriptors, so the loop never ends on a bad client.
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let service = axum::Extension(ConnectInfo::<SocketAddr>(peer)).layer(app.clone());
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
