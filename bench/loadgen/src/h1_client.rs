//! A lean HTTP/1.1 client for the load tools: hyper's connection API on one thread, requests
//! built from a prepared head, connections kept in a plain list ([`Pool`], for `http-load`)
//! or opened one per stream ([`PreparedRequests::send_on_new_connection`], for `sse-load`).
//!
//! A load tool shares the machine with the contender it measures; every microsecond it
//! spends per call or per token is taken from them. reqwest on a multi-threaded runtime
//! spent more CPU per call than the mock or sluice did: its pool's locks, a request built and
//! its URL parsed per call, and wake-ups crossing threads. Here a call is one task on a
//! single-threaded runtime, its connection taken from and given back to a `Vec`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::request_spec::RequestSpec;

/// One connection's request handle.
type Sender = SendRequest<Full<Bytes>>;

/// The requests of a [`RequestSpec`], ready to send: one head per bearer token, the body
/// shared.
pub struct PreparedRequests {
    addr: SocketAddr,
    method: Method,
    targets: Vec<Uri>,
    heads: Vec<HeaderMap>,
    body: Bytes,
}

impl PreparedRequests {
    /// Prepares `spec`'s requests; every URL must be plain `http://` to one host given as an
    /// IP address (the benchmark's servers all listen on loopback).
    pub fn new(spec: &RequestSpec) -> Result<Self, String> {
        let mut addr = None;
        let mut targets = Vec::with_capacity(spec.urls.len());
        for url in &spec.urls {
            let uri: Uri = url.parse().map_err(|e| format!("url {url}: {e}"))?;
            if uri.scheme_str() != Some("http") {
                return Err(format!("url {url}: only http:// is supported"));
            }
            let authority = uri
                .authority()
                .ok_or_else(|| format!("url {url}: no host"))?;
            let here: SocketAddr = format!("{}:{}", authority.host(), uri.port_u16().unwrap_or(80))
                .parse()
                .map_err(|_| format!("url {url}: the host must be an IP address"))?;
            if addr.is_some_and(|a| a != here) {
                return Err("every url must name the same host and port".into());
            }
            addr = Some(here);
            let target = uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .parse()
                .map_err(|e| format!("url {url}: {e}"))?;
            targets.push(target);
        }
        let addr = addr.ok_or("give --url or --urls-file")?;
        let mut base = spec.headers.clone();
        let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?;
        base.insert(HOST, host);
        if spec.body.is_some() {
            base.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let heads = if spec.bearer_tokens.is_empty() {
            vec![base]
        } else {
            spec.bearer_tokens
                .iter()
                .map(|token| {
                    let mut head = base.clone();
                    let value = HeaderValue::from_str(&format!("Bearer {token}"))
                        .map_err(|e| format!("bearer token: {e}"))?;
                    head.insert(AUTHORIZATION, value);
                    Ok(head)
                })
                .collect::<Result<_, String>>()?
        };
        Ok(Self {
            addr,
            method: spec.method.clone(),
            targets,
            heads,
            body: Bytes::from(spec.body.clone().unwrap_or_default()),
        })
    }

    /// Opens a connection of its own for request `index` and sends it; the connection is
    /// driven by a task of the current `LocalSet` and closes when the response (with its
    /// body) is dropped. Fails as `connect` or `request`.
    pub async fn send_on_new_connection(&self, index: usize) -> Result<Response<Incoming>, String> {
        let mut sender = connect(self.addr).await?;
        sender
            .send_request(self.request(index))
            .await
            .map_err(|_| "request".to_owned())
    }

    /// The `index`-th request (URLs and tokens used in turn).
    fn request(&self, index: usize) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.targets[index % self.targets.len()].clone();
        *request.headers_mut() = self.heads[index % self.heads.len()].clone();
        request
    }
}

/// Up to `max` connections to one server, reused one call at a time. Single-threaded: share
/// it with `Rc` between tasks of one `LocalSet`.
pub struct Pool {
    requests: PreparedRequests,
    idle: RefCell<Vec<Sender>>,
    /// Connections open or being opened, idle ones included.
    open: Cell<usize>,
    max: usize,
}

/// A connection taken from the pool for one call, or the right to open one.
pub struct Lease(Option<Sender>);

impl Pool {
    /// A pool of at most `max` connections for `requests`.
    pub fn new(requests: PreparedRequests, max: usize) -> Rc<Self> {
        Rc::new(Self {
            requests,
            idle: RefCell::new(Vec::new()),
            open: Cell::new(0),
            max: max.max(1),
        })
    }

    /// An idle connection, or the right to open one; `None` when `max` calls are in flight.
    pub fn try_lease(&self) -> Option<Lease> {
        if let Some(sender) = self.idle.borrow_mut().pop() {
            return Some(Lease(Some(sender)));
        }
        if self.open.get() >= self.max {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(Lease(None))
    }

    /// Sends request `index` on `lease`'s connection (opened first if need be), reads the
    /// whole answer and gives the connection back unless it closed. A non-2xx status is an
    /// error named by its code; a transport failure is `connect`, `request` or `body`.
    pub async fn call(&self, lease: Lease, index: usize) -> Result<(), String> {
        if let Some(mut sender) = lease.0 {
            match exchange(&mut sender, self.requests.request(index)).await {
                // A kept connection the server closed meanwhile (an idle timeout, or a close
                // announced in its last answer and not yet seen): sent again on a new one,
                // as browsers do.
                Err(Failure::NoAnswer) => {}
                outcome => return self.give_back(sender, outcome),
            }
        }
        match connect(self.requests.addr).await {
            Ok(mut sender) => {
                let outcome = exchange(&mut sender, self.requests.request(index)).await;
                self.give_back(sender, outcome)
            }
            Err(kind) => {
                self.open.set(self.open.get() - 1);
                Err(kind)
            }
        }
    }

    fn give_back(&self, sender: Sender, outcome: Result<(), Failure>) -> Result<(), String> {
        // An error status leaves the connection usable; a broken exchange does not.
        let usable = matches!(outcome, Ok(()) | Err(Failure::Status(_)));
        if usable && !sender.is_closed() {
            self.idle.borrow_mut().push(sender);
        } else {
            self.open.set(self.open.get() - 1);
        }
        outcome.map_err(|failure| failure.kind())
    }
}

/// A new connection to `addr`, driven by a task of the current `LocalSet`.
async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| "connect".to_owned())?;
    stream.set_nodelay(true).map_err(|_| "connect".to_owned())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "connect".to_owned())?;
    tokio::task::spawn_local(connection);
    Ok(sender)
}

/// How a call on an open connection failed.
enum Failure {
    /// No answer came: the connection was closed, or broke before the status line.
    NoAnswer,
    /// The answer's body broke off.
    Body,
    /// A non-2xx status.
    Status(u16),
}

impl Failure {
    /// The name the report counts it under.
    fn kind(&self) -> String {
        match self {
            Failure::NoAnswer => "request".to_owned(),
            Failure::Body => "body".to_owned(),
            Failure::Status(code) => format!("status_{code}"),
        }
    }
}

async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<(), Failure> {
    sender.ready().await.map_err(|_| Failure::NoAnswer)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| Failure::NoAnswer)?;
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|_| Failure::Body)?;
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::service::service_fn;
    use hyper::{Response, StatusCode};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering `status`, closing each connection after one answer when `close`;
    /// returns its URL and how many connections it accepted so far.
    async fn server(status: StatusCode, close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| async move {
                        assert_eq!(request.headers()[AUTHORIZATION], "Bearer t1");
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = status;
                        if close {
                            response
                                .headers_mut()
                                .insert("connection", HeaderValue::from_static("close"));
                        }
                        Ok::<_, Infallible>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, accepted)
    }

    /// A request spec for `urls`, sent with the bearer token `t1` and a `{}` body.
    fn spec(urls: &[&str]) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            headers: HeaderMap::new(),
            bearer_tokens: vec!["t1".to_owned()],
            body: Some("{}".to_owned()),
        }
    }

    fn pool(url: &str, max: usize) -> Rc<Pool> {
        Pool::new(PreparedRequests::new(&spec(&[url])).unwrap(), max)
    }

    /// Runs `test` inside a `LocalSet`, as the load tools run the pool.
    async fn local(test: impl Future<Output = ()>) {
        tokio::task::LocalSet::new().run_until(test).await;
    }

    async fn calls(pool: &Rc<Pool>, n: usize) -> Vec<Result<(), String>> {
        let mut outcomes = Vec::new();
        for i in 0..n {
            let lease = pool.try_lease().expect("a free connection");
            outcomes.push(pool.call(lease, i).await);
        }
        outcomes
    }

    #[tokio::test]
    async fn a_kept_connection_serves_call_after_call() {
        local(async {
            let (url, accepted) = server(StatusCode::OK, false).await;
            let pool = pool(&url, 4);
            assert!(calls(&pool, 3).await.iter().all(Result::is_ok));
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    /// A server that answers one call per connection and closes it, without saying so (no
    /// `Connection: close`), when told on `close_now`, as an idle timeout would; says on
    /// `closed` when it has.
    async fn silent_closer() -> (
        String,
        tokio::sync::mpsc::UnboundedSender<()>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let (close_now, mut close_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (closed, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                // The head and the two-byte body `{}`.
                while !request.ends_with(b"\r\n\r\n{}") {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client closed first");
                    request.extend_from_slice(&buf[..n]);
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                close_rx.recv().await.unwrap();
                drop(stream);
                closed.send(()).unwrap();
            }
        });
        (url, close_now, closed_rx)
    }

    #[tokio::test]
    async fn a_call_on_a_connection_closed_meanwhile_goes_on_a_new_one() {
        local(async {
            let (url, close_now, mut closed) = silent_closer().await;
            let pool = pool(&url, 1);
            for i in 0..3 {
                let lease = pool.try_lease().unwrap();
                assert_eq!(pool.call(lease, i).await, Ok(()), "call {i}");
                assert_eq!(pool.idle.borrow().len(), 1, "kept after call {i}");
                close_now.send(()).unwrap();
                closed.recv().await.unwrap();
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        local(async {
            let (url, accepted) = server(StatusCode::OK, true).await;
            let pool = pool(&url, 4);
            assert!(calls(&pool, 3).await.iter().all(Result::is_ok));
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_status_is_named_keeps_its_connection_and_in_flight_calls_are_capped() {
        local(async {
            let (url, _) = server(StatusCode::SERVICE_UNAVAILABLE, false).await;
            let pool = pool(&url, 1);
            let lease = pool.try_lease().unwrap();
            assert!(pool.try_lease().is_none(), "one connection, already leased");
            assert_eq!(pool.call(lease, 0).await, Err("status_503".to_owned()));
            assert_eq!(
                pool.idle.borrow().len(),
                1,
                "an error status keeps the connection"
            );
        })
        .await;
    }

    #[test]
    fn only_plain_http_to_one_address_is_accepted() {
        assert!(PreparedRequests::new(&spec(&["https://127.0.0.1/"])).is_err());
        assert!(PreparedRequests::new(&spec(&["http://localhost/"])).is_err());
        assert!(
            PreparedRequests::new(&spec(&["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"]))
                .is_err()
        );
        let prepared =
            PreparedRequests::new(&spec(&["http://127.0.0.1:1/a?q=1", "http://127.0.0.1:1/b"]))
                .unwrap();
        assert_eq!(prepared.request(0).uri(), "/a?q=1");
        assert_eq!(prepared.request(1).uri(), "/b");
        assert_eq!(prepared.request(0).headers()[HOST], "127.0.0.1:1");
        assert_eq!(prepared.request(0).headers()[AUTHORIZATION], "Bearer t1");
        assert_eq!(
            prepared.request(0).headers()[CONTENT_TYPE],
            "application/json"
        );
    }
}
