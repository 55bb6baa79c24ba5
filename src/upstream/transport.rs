//! The connections under every upstream call: hyper's pooled HTTP/1.1 client, over TLS for
//! `https` URLs.
//!
//! hyper's client directly rather than through reqwest, for what was measured with thousands
//! of open answers: reqwest cannot size a connection's read buffer, so every upstream
//! connection held hyper's adaptive 8 KiB one for the whole answer (token chunks are tens of
//! bytes), and it boxed every plain connection in a wrapper sized for TLS state. Here reads go
//! into a [`READ_BUFFER_BYTES`] buffer and a plain connection carries no TLS state. reqwest's
//! layers (redirects, retries, request conversion) also cost about a tenth of a passthrough
//! call's CPU, for features the AI service does not need.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::uri::Scheme;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;

/// Any error a request body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of an upstream request: bytes built here, or a browser's body streamed on.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Size of each read from an upstream connection. Token chunks are tens of bytes and a JSON
/// answer is a few KiB; larger bodies simply take more reads. hyper's default is an adaptive
/// buffer that starts at 8 KiB, kept for as long as the connection (an open answer) lives.
pub const READ_BUFFER_BYTES: usize = 4096;

/// Idle pooled connections are closed after this long (reqwest's default, kept).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A request body of known bytes (sent with `Content-Length`).
pub fn full_body(bytes: Bytes) -> RequestBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty request body.
pub fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Connection pools kept per thread, so that a call made on one of the gateway's event-loop
/// threads ([`crate::http::shards`]) reuses connections driven by that same thread instead of
/// waking another one at every step. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct Transport {
    connect_timeout: Duration,
    pools: Arc<ThreadLocal<Pools>>,
}

/// Two pools, one per scheme, so that a plain connection is not sized for TLS.
struct Pools {
    plain: Client<HttpConnector, RequestBody>,
    tls: Client<HttpsConnector<HttpConnector>, RequestBody>,
}

impl Transport {
    /// Pools whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            pools: Arc::new(ThreadLocal::new()),
        }
    }

    /// Sends `request` on a pooled connection of its scheme. Redirects are not followed: the
    /// AI service has no reason to send one, and following it could carry the API key away.
    pub fn request(&self, request: Request<RequestBody>) -> ResponseFuture {
        let pools = self.pools.get_or(|| Pools::new(self.connect_timeout));
        if request.uri().scheme() == Some(&Scheme::HTTPS) {
            pools.tls.request(request)
        } else {
            pools.plain.request(request)
        }
    }
}

impl Pools {
    fn new(connect_timeout: Duration) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        // Without it a request written as head then body waits for the peer's delayed ACK.
        tcp.set_nodelay(true);
        let mut tls_tcp = tcp.clone();
        tls_tcp.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_only()
            .enable_http1()
            .wrap_connector(tls_tcp);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_read_buf_exact_size(READ_BUFFER_BYTES);
        Self {
            plain: builder.build(tcp),
            tls: builder.build(tls),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    /// The first bytes an upstream at `scheme://127.0.0.1:port` receives from the transport.
    async fn first_bytes(scheme: &str) -> [u8; 4] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut request = Request::new(empty_body());
        *request.uri_mut() = format!("{scheme}://127.0.0.1:{port}/x").parse().unwrap();
        let call = tokio::spawn(Transport::new(Duration::from_secs(2)).request(request));
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        let (mut socket, _) = accepted.expect("the transport connected").unwrap();
        let mut first = [0u8; 4];
        socket.read_exact(&mut first).await.unwrap();
        drop(socket);
        assert!(call.await.unwrap().is_err(), "the peer hung up");
        first
    }

    /// Runs `future` on a new thread with a single-threaded runtime of its own, as the
    /// gateway's event-loop threads do.
    fn on_own_thread(
        future: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(future);
        })
    }

    /// Two calls from each of two threads reach a counting upstream: every thread reuses its
    /// own connection and never another thread's.
    #[test]
    fn each_thread_keeps_its_own_connections() {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        upstream.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", upstream.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        on_own_thread(async move {
            let upstream = TcpListener::from_std(upstream).unwrap();
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
            loop {
                let (tcp, _) = upstream.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
                );
            }
        });
        let transport = Transport::new(Duration::from_secs(2));
        let two_calls = move || {
            let (transport, url) = (transport.clone(), url.clone());
            async move {
                for _ in 0..2 {
                    let mut request = Request::new(empty_body());
                    *request.uri_mut() = url.parse().unwrap();
                    let call = transport.request(request);
                    let response = tokio::time::timeout(Duration::from_secs(5), call)
                        .await
                        .expect("answered")
                        .unwrap();
                    response.into_body().collect().await.unwrap();
                }
            }
        };
        // The first thread keeps its runtime running (its connection open and idle in a
        // pool) until the second has made its calls, which start once the first's are done.
        let (first_done, second_may_start) = oneshot::channel::<()>();
        let (second_done, first_may_end) = oneshot::channel::<()>();
        let first_calls = two_calls();
        let first = on_own_thread(async move {
            first_calls.await;
            first_done.send(()).unwrap();
            first_may_end.await.unwrap();
        });
        let second_calls = two_calls();
        let second = on_own_thread(async move {
            second_may_start.await.unwrap();
            second_calls.await;
            second_done.send(()).unwrap();
        });
        second.join().unwrap();
        first.join().unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn https_urls_get_tls_and_http_urls_plain_http() {
        let tls = first_bytes("https").await;
        assert_eq!(tls[0], 0x16, "a TLS handshake record, got {tls:?}");
        assert_eq!(&first_bytes("http").await, b"GET ");
    }
}
