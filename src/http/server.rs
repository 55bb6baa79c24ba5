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
//! Each event-loop thread of [`super::shards`] accepts on a listener of its own and serves what
//! it accepts itself; see [`Listeners`].

use std::future::Future;
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
use tokio::net::{TcpListener, TcpSocket};
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
    let socket = socket_for(addr)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A TCP socket of `addr`'s family with `SO_REUSEADDR`, not yet bound.
fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// The gateway's listening sockets: one per event-loop thread, all on one address
/// (`SO_REUSEPORT`, Linux's meaning: the kernel spreads new connections across them by their
/// addresses), so each thread accepts its own share. Accepting on one thread of the main
/// runtime and handing each connection over cost every new connection another thread's turn
/// on a busy CPU before its request was even read, and that runtime also runs Redis, the
/// progress fan-out and the database's work: with 1,000 chat streams starting within a
/// second, added time to first token p99 halved when the threads accepted for themselves
/// (BENCHMARKS.md). This is how nginx (`reuseport`) and Envoy listen.
///
/// `SO_REUSEPORT` alone would let a second gateway started on the same port join the group
/// without a word and take a share of the connections; [`Listeners::bind`] first binds the
/// address without it, so a port already in use fails to bind as it always has.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl Listeners {
    /// Binds `count` listeners to `addr` (port 0: one free port for all of them). Async only
    /// because tokio makes a listening socket inside its runtime.
    pub async fn bind(addr: SocketAddr, count: std::num::NonZeroUsize) -> std::io::Result<Self> {
        // Fails like any bind when something listens there, a group like this one included;
        // released at once, it also tells which free port port 0 means.
        let port = {
            let probe = socket_for(addr)?;
            probe.bind(addr)?;
            probe.local_addr()?.port()
        };
        let addr = SocketAddr::new(addr.ip(), port);
        let mut sockets = Vec::with_capacity(count.get());
        for _ in 0..count.get() {
            let socket = socket_for(addr)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            // Registered with this runtime only until `into_std`: each listener is polled by
            // the thread that accepts on it.
            sockets.push(socket.listen(LISTEN_BACKLOG)?.into_std()?);
        }
        Ok(Self { sockets, addr })
    }

    /// The address they listen on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves `app` on `listeners`, each on its own thread of `shards`, until `shutdown` fires;
/// then every thread stops accepting, asks its open connections to close after their current
/// response, and the returned future completes once all have closed.
///
/// Accepting starts before this returns. Each request carries the peer's
/// [`ConnectInfo<SocketAddr>`], as with axum's `into_make_service_with_connect_info`.
pub fn serve(
    listeners: Listeners,
    app: impl App,
    shutdown: CancellationToken,
    shards: &Shards,
) -> impl Future<Output = ()> + Send + 'static {
    let loops: Vec<_> = listeners
        .sockets
        .into_iter()
        .enumerate()
        .map(|(index, socket)| {
            shards.spawn_on(index, accept_loop(socket, app.clone(), shutdown.clone()))
        })
        .collect();
    async move {
        for accepting in loops {
            // An error means the thread was stopped first, which dropped its connections.
            let _ = accepting.await;
        }
    }
}

/// Accepts on `socket` and serves each connection on the current (event-loop) thread.
async fn accept_loop(socket: std::net::TcpListener, app: impl App, shutdown: CancellationToken) {
    let mut listener = match TcpListener::from_std(socket) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(error = %err, "cannot poll a listener; it is closed and the other threads take its share");
            return;
        }
    };
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
        // Without TCP_NODELAY, a response written in two pieces (head, then body) waits for
        // the client's delayed ACK: ~40 ms added to every request on a fresh connection.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = ServiceBuilder::new()
            .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)))
            .map_request(|request: Request<Incoming>| request.map(Body::new))
            .service(app.clone());
        let connection = connections
            .watch(http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
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
            tokio::net::TcpStream::connect(addr),
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

    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::num::NonZeroUsize;
    use std::thread;
    use std::time::Duration;

    use axum::routing::get;

    use super::*;

    /// More clients than tokio's default backlog (128), and than the 1,024 of older tokio
    /// versions, connect at once while nothing accepts: every one is queued at once.
    #[tokio::test]
    async fn a_burst_of_connections_beyond_tokios_default_backlog_is_queued_at_once() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(
            addr.ip().is_loopback(),
            "listens where asked, not on {addr}"
        );
        let waiting = connects_left_waiting(addr, 1_500).await;
        assert_eq!(waiting, 0, "connections left waiting for a SYN retransmit");
        drop(listener);
    }

    /// The test's own runtime is blocked throughout (its thread does blocking I/O as the
    /// client), so every connection is accepted, not only served, by the shard threads.
    #[tokio::test]
    async fn the_shard_threads_accept_and_serve_connections_by_themselves() {
        let listeners = Listeners::bind(
            "127.0.0.1:0".parse().unwrap(),
            NonZeroUsize::new(2).unwrap(),
        )
        .await
        .unwrap();
        let addr = listeners.local_addr();
        let app = axum::Router::new().route(
            "/",
            get(|| async { thread::current().name().unwrap_or_default().to_owned() }),
        );
        let shards = Shards::start(NonZeroUsize::new(2).unwrap()).unwrap();
        let shutdown = CancellationToken::new();
        let server = serve(listeners, app, shutdown.clone(), &shards);
        let mut served_by = BTreeSet::new();
        // A new connection each time; the kernel spreads them by their ports, so 32 reach
        // both threads but with a chance of 2 in 4 billion.
        for _ in 0..32 {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).unwrap();
            let (_, body) = response.split_once("\r\n\r\n").unwrap();
            served_by.insert(body.to_owned());
        }
        assert_eq!(
            served_by.into_iter().collect::<Vec<_>>(),
            ["sluice-shard-0", "sluice-shard-1"]
        );
        shutdown.cancel();
        server.await;
        shards.stop().await;
    }

    #[tokio::test]
    async fn a_port_in_use_fails_to_bind_even_for_another_gateway() {
        let count = NonZeroUsize::new(2).unwrap();
        let first = Listeners::bind("127.0.0.1:0".parse().unwrap(), count)
            .await
            .unwrap();
        let addr = first.local_addr();
        let second = Listeners::bind(addr, count).await;
        assert_eq!(
            second.err().map(|err| err.kind()),
            Some(std::io::ErrorKind::AddrInUse),
            "a second group would silently take a share of the connections"
        );
        drop(first);
        let again = Listeners::bind(addr, count).await.unwrap();
        assert_eq!(again.local_addr(), addr);
    }
}
