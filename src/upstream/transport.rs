//! The connections under every upstream call: hyper's HTTP/1.1 client connections, over TLS
//! for `https` URLs, kept idle per thread between calls ([`super::pool`]). Requests over
//! plain HTTP whose body is in hand (streamed answers, passthrough calls) are the exception:
//! the calling task writes them and reads their answer itself ([`super::h1_stream`],
//! [`Transport::exchange`]), on connections kept the same way.
//!
//! hyper's client directly rather than through reqwest, for what was measured with thousands
//! of open answers: reqwest cannot size a connection's read buffer, so every upstream
//! connection held hyper's adaptive 8 KiB one for the whole answer (token chunks are tens of
//! bytes), and it boxed every plain connection in a wrapper sized for TLS state. Here reads go
//! into a [`READ_BUFFER_BYTES`] buffer and a plain connection carries no TLS state. reqwest's
//! layers (redirects, retries, request conversion) also cost about a tenth of a passthrough
//! call's CPU, for features the AI service does not need.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use thread_local::ThreadLocal;
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::error::UpstreamError;
use super::h1_stream::{self, ExchangeError, H1Body};
use super::pool::{IdleConnections, Origin};

/// Any error a request body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of an upstream request: bytes built here, or a browser's body streamed on.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Size of each read from an upstream connection. Token chunks are tens of bytes and a JSON
/// answer is a few KiB; larger bodies simply take more reads. hyper's default is an adaptive
/// buffer that starts at 8 KiB, kept for as long as the connection (an open answer) lives.
pub const READ_BUFFER_BYTES: usize = 4096;

/// Idle connections are closed after this long (reqwest's default, kept).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most idle connections a thread keeps per kind (hyper's, exchanges'): enough for
/// every connection of a burst of a thousand concurrent calls per thread to be reused.
const POOL_MAX_IDLE: usize = 1024;

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

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (refused, unreachable, TLS, or the connect timeout).
    #[error("connecting to the upstream failed")]
    Connect(#[source] BoxError),
    /// The connection failed while the request was sent or its response head read.
    #[error("the upstream connection failed")]
    Request(#[source] hyper::Error),
    /// A streamed exchange's connection failed, or its response head was not HTTP/1.1,
    /// before the head was in ([`h1_stream`]).
    #[error("the upstream connection failed")]
    Exchange(#[source] std::io::Error),
    /// The URL names no `http` or `https` origin.
    #[error("the upstream URL is not an absolute http(s) URL")]
    BadUrl,
}

/// Which requests [`Transport::exchange`] sends again on a new connection when the reused
/// connection it took turns out closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Only one that could not be written whole, so the upstream cannot have acted on it: all
    /// a proxy may do with a request that is not idempotent (RFC 9110, 9.2.2).
    IfUnsent,
    /// Also one written whole that got not one byte back: most likely a connection the
    /// upstream had closed while idle, though in a rare race it read the request first.
    IfUnanswered,
}

impl Resend {
    /// For a request relayed for a client: only what cannot have been acted on is sent
    /// twice, unless the method says that doing it twice is harmless.
    pub fn relaying(method: &http::Method) -> Self {
        if method.is_idempotent() {
            Self::IfUnanswered
        } else {
            Self::IfUnsent
        }
    }
}

/// The body of a response to [`Transport::exchange`]: read by the consuming task itself over
/// plain HTTP ([`h1_stream`]), or hyper's body over TLS (and for passthrough bodies streamed
/// on, [`super::client::OutgoingBody::Streamed`]).
pub enum StreamBody {
    /// Plain HTTP: one connection, read where the body is polled.
    Direct(H1Body),
    /// TLS: a pooled hyper connection.
    Pooled(Incoming),
}

impl Stream for StreamBody {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Direct(body) => Pin::new(body).poll_next(cx),
            Self::Pooled(body) => loop {
                return match ready!(hyper::body::Body::poll_frame(Pin::new(&mut *body), cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => Poll::Ready(Some(Ok(data))),
                        // Trailers carry no data.
                        Err(_) => continue,
                    },
                    Some(Err(err)) => Poll::Ready(Some(Err(UpstreamError::from_body(err)))),
                    None => Poll::Ready(None),
                };
            },
        }
    }
}

/// Connections kept per thread, so that a call made on one of the gateway's event-loop
/// threads ([`crate::http::shards`]) reuses connections driven by that same thread instead of
/// waking another one at every step. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    plain: HttpConnector,
    tls: HttpsConnector<HttpConnector>,
    http1: http1::Builder,
    idle: ThreadLocal<IdleConnections>,
    /// Plain connections of exchanges ([`Transport::exchange`]).
    streams: ThreadLocal<IdleConnections<TcpStream>>,
}

impl Transport {
    /// Connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        let mut plain = HttpConnector::new();
        plain.set_connect_timeout(Some(connect_timeout));
        // Without it a request written as head then body waits for the peer's delayed ACK.
        plain.set_nodelay(true);
        let mut tls_tcp = plain.clone();
        tls_tcp.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_only()
            .enable_http1()
            .wrap_connector(tls_tcp);
        let mut http1 = http1::Builder::new();
        http1.read_buf_exact_size(Some(READ_BUFFER_BYTES));
        Self {
            inner: Arc::new(Inner {
                plain,
                tls,
                http1,
                idle: ThreadLocal::new(),
                streams: ThreadLocal::new(),
            }),
        }
    }

    /// Sends `request` (an absolute URL) on an idle connection to its origin, or on a new
    /// one. `Host` is set from the URL unless the caller set it. Redirects are not followed:
    /// the AI service has no reason to send one, and following it could carry the API key
    /// away.
    ///
    /// A request that an idle connection could not take (the upstream closed it meanwhile)
    /// is sent again on a new connection; one that was sent is never sent twice.
    pub async fn request(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, TransportError> {
        let origin = Origin::of(request.uri()).ok_or(TransportError::BadUrl)?;
        to_origin_form(&mut request, &origin)?;
        loop {
            // Looked up each time, never held across an await: on a multi-threaded runtime
            // the call may continue on another thread, with that thread's connections.
            let taken = self.idle().take(&origin);
            let (mut sender, reused) = match taken {
                Some(sender) => (sender, true),
                // Boxed: connecting (TLS included) is a large future, and held inline it
                // would make every call's future, moved through each layer, that large too.
                None => (Box::pin(self.connect(&origin)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.release(origin, sender);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(TransportError::Request(err.into_error())),
                },
            }
        }
    }

    /// Sends `request` (an absolute URL, its body in hand) and returns the response with its
    /// body unread, whatever the status. Over plain HTTP the body is read by the caller's
    /// task ([`h1_stream`] says why), on a connection kept per thread like the others: one
    /// whose body ended cleanly is reused, one dropped before its end is closed. A reused
    /// connection that turns out closed gets the request sent again on a new one as far as
    /// `resend` allows. Over TLS it goes through [`Transport::request`], which resends only
    /// what it did not send.
    pub async fn exchange(
        &self,
        mut request: Request<Bytes>,
        resend: Resend,
    ) -> Result<Response<StreamBody>, TransportError> {
        let origin = Origin::of(request.uri()).ok_or(TransportError::BadUrl)?;
        if origin.tls {
            let (parts, body) = request.into_parts();
            // Boxed: hyper's client exchange is a large future, and held inline it would make
            // every plain call's future that large too (see `request`).
            let response =
                Box::pin(self.request(Request::from_parts(parts, full_body(body)))).await?;
            return Ok(response.map(StreamBody::Pooled));
        }
        to_origin_form(&mut request, &origin)?;
        loop {
            let taken = self.streams().take(&origin);
            let (io, reused) = match taken {
                Some(io) => (io, true),
                // Boxed for the reason `request` boxes its connect.
                None => (
                    Box::pin(self.connect_plain(&origin)).await?.into_inner(),
                    false,
                ),
            };
            match Box::pin(h1_stream::exchange(io, &request)).await {
                Ok(mut response) => {
                    let transport = self.clone();
                    let origin = origin.clone();
                    response
                        .body_mut()
                        .on_clean_end(Box::new(move |io| transport.streams().put(origin, io)));
                    return Ok(response.map(StreamBody::Direct));
                }
                // The upstream closed the idle connection as it was taken.
                Err(ExchangeError::Unsent(_)) if reused => {}
                Err(ExchangeError::Unanswered(_)) if reused && resend == Resend::IfUnanswered => {}
                Err(err) => return Err(TransportError::Exchange(err.into_inner())),
            }
        }
    }

    fn streams(&self) -> &IdleConnections<TcpStream> {
        self.inner
            .streams
            .get_or(|| IdleConnections::new(POOL_IDLE_TIMEOUT, POOL_MAX_IDLE))
    }

    fn idle(&self) -> &IdleConnections {
        self.inner
            .idle
            .get_or(|| IdleConnections::new(POOL_IDLE_TIMEOUT, POOL_MAX_IDLE))
    }

    /// Back to the idle connections once the response's body is read: at once when it is
    /// already (a JSON answer read with its head), else by a task that waits for it (a
    /// stream), as hyper-util's pool did.
    fn release(&self, origin: Origin, mut sender: SendRequest<RequestBody>) {
        if sender.is_ready() {
            self.idle().put(origin, sender);
            return;
        }
        let transport = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                transport.idle().put(origin, sender);
            }
        });
    }

    async fn connect(&self, origin: &Origin) -> Result<SendRequest<RequestBody>, TransportError> {
        let inner = &self.inner;
        if origin.tls {
            let io = inner.tls.clone().oneshot(origin.url()).await;
            handshake(&inner.http1, io.map_err(TransportError::Connect)?).await
        } else {
            handshake(&inner.http1, self.connect_plain(origin).await?).await
        }
    }

    /// A plain TCP connection to `origin` (its connect timeout and `TCP_NODELAY` set).
    async fn connect_plain(&self, origin: &Origin) -> Result<TokioIo<TcpStream>, TransportError> {
        let io = self.inner.plain.clone().oneshot(origin.url()).await;
        io.map_err(|err| TransportError::Connect(err.into()))
    }
}

/// An HTTP/1.1 connection over `io`, driven by a task of its own on the current runtime.
async fn handshake<T>(
    builder: &http1::Builder,
    io: T,
) -> Result<SendRequest<RequestBody>, TransportError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = builder
        .handshake(io)
        .await
        .map_err(|err| TransportError::Connect(err.into()))?;
    tokio::spawn(async move {
        // The error is the request's to report (its response or body fails with it).
        let _ = connection.await;
    });
    Ok(sender)
}

/// HTTP/1.1 requests name only the path; the host goes in `Host`.
fn to_origin_form<B>(request: &mut Request<B>, origin: &Origin) -> Result<(), TransportError> {
    if !request.headers().contains_key(HOST) {
        // Never the URL's credentials, if it had any.
        let authority = origin.authority.as_str();
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = HeaderValue::from_str(host).map_err(|_| TransportError::BadUrl)?;
        request.headers_mut().insert(HOST, host);
    }
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    /// The first bytes an upstream at `scheme://127.0.0.1:port` receives from the transport,
    /// for a call (`streamed: false`) or a streamed answer.
    async fn first_bytes(scheme: &str, streamed: bool) -> [u8; 4] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "{scheme}://127.0.0.1:{}/x",
            listener.local_addr().unwrap().port()
        );
        let transport = Transport::new(Duration::from_secs(2));
        let call = tokio::spawn(async move {
            if streamed {
                transport
                    .exchange(stream_request(&url), Resend::IfUnanswered)
                    .await
                    .map(|_| ())
            } else {
                let mut request = Request::new(empty_body());
                *request.uri_mut() = url.parse().unwrap();
                transport.request(request).await.map(|_| ())
            }
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        let (mut socket, _) = accepted.expect("the transport connected").unwrap();
        let mut first = [0u8; 4];
        socket.read_exact(&mut first).await.unwrap();
        drop(socket);
        assert!(call.await.unwrap().is_err(), "the peer hung up");
        first
    }

    /// Serves `app` on every connection `upstream` accepts, counting the connections.
    async fn serve_counting(upstream: TcpListener, app: axum::Router, counter: Arc<AtomicUsize>) {
        loop {
            let (tcp, _) = upstream.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
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
            serve_counting(upstream, app, counter).await;
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

    /// A streamed answer holds its connection until its body is read; then the connection
    /// goes back to the thread's idle ones and the next call reuses it.
    #[tokio::test]
    async fn a_streamed_answer_gives_its_connection_back_once_read() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", upstream.local_addr().unwrap());
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(Some(released)));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move || {
                    let released = released.lock().unwrap().take();
                    async move {
                        // The first answer's last chunk waits for the test's word.
                        let body = async_stream::stream! {
                            yield Ok::<_, std::convert::Infallible>(Bytes::from_static(b"a"));
                            if let Some(released) = released {
                                let _ = released.await;
                            }
                            yield Ok(Bytes::from_static(b"b"));
                        };
                        axum::body::Body::from_stream(body)
                    }
                }),
            );
            serve_counting(upstream, app, counter).await;
        });
        let transport = Transport::new(Duration::from_secs(2));
        let get = || {
            let mut request = Request::new(empty_body());
            *request.uri_mut() = url.parse().unwrap();
            transport.request(request)
        };
        let first = get().await.unwrap();
        assert_eq!(transport.idle().len(), 0, "busy while its body streams");
        release.send(()).unwrap();
        let body = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ab");
        tokio::time::timeout(Duration::from_secs(5), async {
            while transport.idle().len() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the connection came back");
        let second = get().await.unwrap();
        second.into_body().collect().await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// When a [`raw_upstream`] closes a connection without saying so.
    #[derive(Clone, Copy)]
    enum HangUp {
        /// Never: every request is answered and the connection kept.
        Never,
        /// After answering each connection's first request.
        AfterEachAnswer,
        /// On the first connection's second request, read whole and not answered.
        OnSecondRequest,
    }

    /// An upstream at `url` that reads each request up to `request_end` and answers it with
    /// `answer`, hanging up as `hang_up` says; it counts the connections it accepted and the
    /// requests it read.
    struct RawUpstream {
        url: String,
        accepted: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
    }

    async fn raw_upstream(
        request_end: &'static [u8],
        answer: &'static [u8],
        hang_up: HangUp,
    ) -> RawUpstream {
        use tokio::io::AsyncWriteExt;

        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", upstream.local_addr().unwrap());
        let (accepted, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (connections, read) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = upstream.accept().await.unwrap();
                let connection = connections.fetch_add(1, Ordering::SeqCst);
                let read = read.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    for exchange in 0.. {
                        while !request.ends_with(request_end) {
                            if tcp.read_exact(&mut byte).await.is_err() {
                                return;
                            }
                            request.push(byte[0]);
                        }
                        request.clear();
                        read.fetch_add(1, Ordering::SeqCst);
                        if matches!(hang_up, HangUp::OnSecondRequest)
                            && (connection, exchange) == (0, 1)
                        {
                            return;
                        }
                        tcp.write_all(answer).await.unwrap();
                        if matches!(hang_up, HangUp::AfterEachAnswer) {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream {
            url,
            accepted,
            requests,
        }
    }

    /// The body of a streamed answer from `url` (sent again if a reused connection left it
    /// unanswered, as chat starts are).
    async fn answer_body(transport: &Transport, url: &str) -> StreamBody {
        transport
            .exchange(stream_request(url), Resend::IfUnanswered)
            .await
            .expect("answered")
            .into_body()
    }

    /// A POST for a streamed answer from `url`.
    fn stream_request(url: &str) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from_static(b"{}"));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = url.parse().unwrap();
        request
    }

    /// All of a streamed answer's data.
    async fn read_all(body: StreamBody) -> Vec<u8> {
        use futures_util::StreamExt;
        let chunks: Vec<Bytes> = body.map(|chunk| chunk.unwrap()).collect().await;
        chunks.concat()
    }

    /// Streamed answers over plain HTTP: a connection whose answer was read to its end is
    /// reused by the next answer; one whose answer was dropped midway is closed, never reused.
    #[tokio::test]
    async fn a_streamed_answer_reuses_its_connection_only_after_a_clean_end() {
        use futures_util::StreamExt;

        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", upstream.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let app = axum::Router::new()
                .route(
                    "/",
                    axum::routing::post(|| async {
                        let chunks = ["a", "b"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
                        axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                    }),
                )
                .route(
                    "/endless",
                    axum::routing::post(|| async {
                        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(
                            Bytes::from_static(b"a"),
                        )]);
                        axum::body::Body::from_stream(first.chain(futures_util::stream::pending()))
                    }),
                );
            serve_counting(upstream, app, counter).await;
        });
        let transport = Transport::new(Duration::from_secs(2));
        for _ in 0..2 {
            let response = transport
                .exchange(stream_request(&url), Resend::IfUnanswered)
                .await
                .unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            let body = response.into_body();
            assert_eq!(read_all(body).await, b"ab");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the second answer reused the first's"
        );
        let mut body = answer_body(&transport, &format!("{url}endless")).await;
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"a");
        drop(body);
        assert_eq!(read_all(answer_body(&transport, &url).await).await, b"ab");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a cancelled answer's connection is closed"
        );
    }

    /// A relay stops reading at the answer's last event; the body's end, already sent, is
    /// read when the body is dropped, so the connection is still reused.
    #[tokio::test]
    async fn a_streamed_answer_dropped_after_its_last_data_still_gives_its_connection_back() {
        use futures_util::StreamExt;

        let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        let upstream = raw_upstream(b"\r\n\r\n{}", answer, HangUp::Never).await;
        let transport = Transport::new(Duration::from_secs(2));
        let mut body = answer_body(&transport, &upstream.url).await;
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"ab");
        drop(body);
        assert_eq!(transport.streams().len(), 1, "given back");
        let body = answer_body(&transport, &upstream.url).await;
        assert_eq!(read_all(body).await, b"ab");
        let accepted = upstream.accepted.load(Ordering::SeqCst);
        assert_eq!(accepted, 1, "on the same connection");
    }

    /// An upstream that reads the second request on a reused connection whole and hangs up
    /// without a word: a request a proxy may not send again unless its method allows (RFC
    /// 9110, 9.2.2).
    #[tokio::test]
    async fn a_request_read_and_left_unanswered_is_sent_again_only_when_allowed() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        for (resend, answered) in [(Resend::IfUnsent, false), (Resend::IfUnanswered, true)] {
            let upstream = raw_upstream(b"\r\n\r\n{}", answer, HangUp::OnSecondRequest).await;
            let transport = Transport::new(Duration::from_secs(2));
            let first = transport
                .exchange(stream_request(&upstream.url), resend)
                .await;
            assert_eq!(read_all(first.unwrap().into_body()).await, b"ok");
            let second = transport
                .exchange(stream_request(&upstream.url), resend)
                .await;
            let requests = upstream.requests.load(Ordering::SeqCst);
            if answered {
                assert_eq!(read_all(second.unwrap().into_body()).await, b"ok");
                assert_eq!(requests, 3, "sent again");
            } else {
                assert!(second.is_err(), "not sent again");
                assert_eq!(requests, 2);
            }
        }
    }

    /// An upstream that closes every connection after its answer: each streamed answer still
    /// arrives (the idle connection found closed, or the request sent again on a new one).
    #[tokio::test]
    async fn streamed_answers_survive_an_upstream_that_closes_every_connection() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let upstream = raw_upstream(b"\r\n\r\n{}", answer, HangUp::AfterEachAnswer).await;
        let transport = Transport::new(Duration::from_secs(2));
        for _ in 0..3 {
            let body = answer_body(&transport, &upstream.url).await;
            assert_eq!(read_all(body).await, b"ok");
        }
        assert_eq!(upstream.accepted.load(Ordering::SeqCst), 3);
    }

    /// An upstream that hangs up after every answer, without saying so (no `Connection:
    /// close`): each call still gets its answer, on a new connection, never an error from a
    /// connection found dead (dropped when taken, or the unsent request sent again).
    #[tokio::test]
    async fn calls_survive_an_upstream_that_closes_every_connection() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let upstream = raw_upstream(b"\r\n\r\n", answer, HangUp::AfterEachAnswer).await;
        let transport = Transport::new(Duration::from_secs(2));
        for _ in 0..3 {
            let mut request = Request::new(empty_body());
            *request.uri_mut() = upstream.url.parse().unwrap();
            let response = transport.request(request).await.expect("answered");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(upstream.accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_relayed_request_is_sent_twice_only_when_its_method_is_idempotent() {
        use http::Method;
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert_eq!(Resend::relaying(&method), Resend::IfUnsent, "{method}");
        }
        for method in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert_eq!(Resend::relaying(&method), Resend::IfUnanswered, "{method}");
        }
    }

    #[test]
    fn requests_name_the_path_and_the_host_never_the_credentials() {
        let mut request = Request::new(empty_body());
        *request.uri_mut() = "http://user:secret@ai.internal:8080/x?y=1".parse().unwrap();
        let origin = Origin::of(request.uri()).unwrap();
        to_origin_form(&mut request, &origin).unwrap();
        assert_eq!(request.uri(), "/x?y=1");
        assert_eq!(request.headers()[HOST], "ai.internal:8080");

        let mut request = Request::new(empty_body());
        *request.uri_mut() = "http://ai.internal/".parse().unwrap();
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_static("set.by.caller"));
        let origin = Origin::of(request.uri()).unwrap();
        to_origin_form(&mut request, &origin).unwrap();
        assert_eq!(request.headers()[HOST], "set.by.caller");
    }

    #[tokio::test]
    async fn https_urls_get_tls_and_http_urls_plain_http() {
        for streamed in [false, true] {
            let tls = first_bytes("https", streamed).await;
            assert_eq!(tls[0], 0x16, "a TLS handshake record, got {tls:?}");
        }
        assert_eq!(&first_bytes("http", false).await, b"GET ");
        assert_eq!(&first_bytes("http", true).await, b"POST");
    }
}
