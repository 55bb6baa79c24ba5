//! `hyper-floor`: the least a proxy built on sluice's HTTP crates can do per call, as a
//! benchmark contender. It forwards every request to one upstream with hyper's server and
//! hyper-util's pooled client, on one single-threaded runtime per core as sluice does, and
//! nothing else: no authentication, rate limit, breaker, metrics, request id, timeouts or
//! middleware. Its cost per call is the floor under sluice's on the same machine, so the
//! benchmark can say how much of sluice's cost is its features and how much is the stack.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpSocket;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

#[derive(Parser)]
#[command(about = "A bare hyper reverse proxy: the benchmark's floor for sluice's cost")]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Upstream base, e.g. http://127.0.0.1:9000 (plain HTTP).
    #[arg(long)]
    upstream: String,
    /// Bearer token sent upstream instead of the caller's.
    #[arg(long, default_value = "")]
    upstream_key: String,
    /// Event-loop threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

struct Upstream {
    authority: String,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let base: Uri = args.upstream.parse()?;
    let authority = base
        .authority()
        .ok_or("the upstream URL needs a host")?
        .to_string();
    let upstream = Arc::new(Upstream {
        host: HeaderValue::from_str(&authority)?,
        authority,
        authorization: (!args.upstream_key.is_empty())
            .then(|| HeaderValue::from_str(&format!("Bearer {}", args.upstream_key)))
            .transpose()?,
    });
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let upstream = upstream.clone();
            let listen = args.listen;
            std::thread::spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(serve(listen, upstream))
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| "an event-loop thread panicked")??;
    }
    Ok(())
}

/// One event loop: its own listening socket (the kernel spreads connections over them) and
/// its own connection pool.
async fn serve(listen: SocketAddr, upstream: Arc<Upstream>) -> std::io::Result<()> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(1024)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(connector);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    upstream: &Upstream,
    request: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = match Uri::builder()
        .scheme("http")
        .authority(upstream.authority.as_str())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    parts.headers.insert(HOST, upstream.host.clone());
    match &upstream.authorization {
        Some(value) => parts.headers.insert(AUTHORIZATION, value.clone()),
        None => parts.headers.remove(AUTHORIZATION),
    };
    let body = match body.collect().await {
        Ok(collected) => Full::new(collected.to_bytes())
            .map_err(|never| match never {})
            .boxed_unsync(),
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(BodyExt::boxed_unsync),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response
}
