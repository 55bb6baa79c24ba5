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

/// Two pools, one per scheme, so that a plain connection is not sized for TLS. Cheap to clone;
/// clones share the pools.
#[derive(Clone)]
pub struct Transport {
    plain: Client<HttpConnector, RequestBody>,
    tls: Client<HttpsConnector<HttpConnector>, RequestBody>,
}

impl Transport {
    /// Pools whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
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

    /// Sends `request` on a pooled connection of its scheme. Redirects are not followed: the
    /// AI service has no reason to send one, and following it could carry the API key away.
    pub fn request(&self, request: Request<RequestBody>) -> ResponseFuture {
        if request.uri().scheme() == Some(&Scheme::HTTPS) {
            self.tls.request(request)
        } else {
            self.plain.request(request)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

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

    #[tokio::test]
    async fn https_urls_get_tls_and_http_urls_plain_http() {
        let tls = first_bytes("https").await;
        assert_eq!(tls[0], 0x16, "a TLS handshake record, got {tls:?}");
        assert_eq!(&first_bytes("http").await, b"GET ");
    }
}
