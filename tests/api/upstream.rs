//! The upstream client against small axum servers that misbehave on purpose: hang, fail,
//! pause mid-stream, drop the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::upstream::client::OutgoingBody;
use sluice::upstream::{
    BaseUrl, BreakerConfig, CallContext, CallError, CircuitBreaker, RetryPolicy, SseLimits,
    UpstreamClient, UpstreamConfig, UpstreamError, retry, sse_events,
};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use url::Url;

const API_KEY: &str = "test-api-key-0123456789";
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
const IDLE_TIMEOUT: Duration = Duration::from_millis(300);
/// Upper bound for any single test step, so a bug hangs nothing.
const TEST_LIMIT: Duration = Duration::from_secs(10);

async fn spawn(router: Router) -> BaseUrl {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    BaseUrl::new(Url::parse(&format!("http://{addr}")).unwrap())
}

fn client() -> UpstreamClient {
    UpstreamClient::new(UpstreamConfig::new(API_KEY, CALL_TIMEOUT, IDLE_TIMEOUT)).unwrap()
}

fn ctx() -> CallContext {
    CallContext {
        request_id: Some(http::HeaderValue::from_static("req-123")),
        user_id: Some("user-42".into()),
    }
}

/// A streamed body that sends `chunks`, waiting `gap` before each one after the first.
fn paced_body(chunks: Vec<&'static str>, gap: Duration) -> Body {
    Body::from_stream(async_stream::stream! {
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            yield Ok::<_, std::io::Error>(Bytes::from_static(chunk.as_bytes()));
        }
    })
}

fn sse(body: Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn collect(stream: sluice::upstream::ByteStream) -> (Vec<Bytes>, Option<UpstreamError>) {
    let items: Vec<_> = timeout(TEST_LIMIT, stream.collect::<Vec<_>>())
        .await
        .unwrap();
    let mut chunks = Vec::new();
    let mut error = None;
    for item in items {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => error = Some(err),
        }
    }
    (chunks, error)
}

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .map_or(Value::Null, |v| json!(v.to_str().unwrap()))
}

#[tokio::test]
async fn every_call_carries_the_key_request_id_and_user_id() {
    let base = spawn(Router::new().route(
        "/echo",
        post(|headers: HeaderMap| async move {
            axum::Json(json!({
                "authorization": header(&headers, "authorization"),
                "x-request-id": header(&headers, "x-request-id"),
                "x-user-id": header(&headers, "x-user-id"),
                "content-type": header(&headers, "content-type"),
            }))
        }),
    ))
    .await;
    let seen: Value = client()
        .post_json(&base, "/echo", &json!({"q": 1}), &ctx())
        .await
        .unwrap();
    assert_eq!(seen["authorization"], format!("Bearer {API_KEY}"));
    assert_eq!(seen["x-request-id"], "req-123");
    assert_eq!(seen["x-user-id"], "user-42");
    assert_eq!(seen["content-type"], "application/json");
}

#[tokio::test]
async fn passthrough_replaces_browser_credentials_and_forged_ids() {
    let base = spawn(Router::new().route(
        "/api/search/x",
        get(|headers: HeaderMap| async move {
            (
                StatusCode::IM_A_TEAPOT,
                axum::Json(json!({
                    "authorization": headers.get_all("authorization").iter().count(),
                    "bearer": header(&headers, "authorization"),
                    "x-user-id": header(&headers, "x-user-id"),
                    "x-request-id": header(&headers, "x-request-id"),
                })),
            )
        }),
    ))
    .await;
    // Both ways a passthrough body goes: whole with the head, or streamed on.
    for body in [
        OutgoingBody::Whole(Bytes::new()),
        OutgoingBody::Streamed(sluice::upstream::transport::empty_body()),
    ] {
        let mut request = http::Request::new(body);
        *request.uri_mut() = base.endpoint("/api/search/x?q=1").unwrap();
        let headers = request.headers_mut();
        headers.insert("authorization", "Bearer browser-jwt".parse().unwrap());
        headers.insert("x-user-id", "someone-else".parse().unwrap());
        headers.insert("x-request-id", "caller-forged".parse().unwrap());
        // Outside any request: no id of ours, so none goes on.
        let anonymous = CallContext {
            request_id: None,
            user_id: None,
        };
        let response = client().send(request, &anonymous).await.unwrap();
        assert_eq!(response.status().as_u16(), 418, "statuses pass through");
        let chunks: Vec<_> = response.into_body().collect().await;
        let body: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        let seen: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["authorization"], 1);
        assert_eq!(seen["bearer"], format!("Bearer {API_KEY}"));
        assert_eq!(seen["x-user-id"], Value::Null);
        assert_eq!(seen["x-request-id"], Value::Null);
    }
}

#[tokio::test]
async fn a_hanging_upstream_times_out_within_the_call_timeout() {
    let base =
        spawn(Router::new().route("/hang", post(std::future::pending::<&'static str>))).await;
    let started = Instant::now();
    let err = timeout(
        TEST_LIMIT,
        client().post_json::<_, Value>(&base, "/hang", &json!({}), &ctx()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err:?}");
    assert!(err.counts_as_failure());
    assert!(started.elapsed() >= CALL_TIMEOUT);
    assert!(
        started.elapsed() < CALL_TIMEOUT * 5,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_5xx_is_a_failure_and_a_4xx_is_not() {
    let base = spawn(
        Router::new()
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "stack trace: secret") }),
            )
            .route("/missing", get(|| async { StatusCode::NOT_FOUND })),
    )
    .await;
    let client = client();
    let err = client
        .get_json::<Value>(&base, "/boom", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Status { status: 500, body } if body.contains("stack trace")),
        "{err:?}"
    );
    assert!(err.counts_as_failure());
    assert!(
        !err.to_string().contains("secret"),
        "bodies stay in the logs"
    );

    let err = client
        .get_json::<Value>(&base, "/missing", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(!err.counts_as_failure());
}

#[tokio::test]
async fn a_body_that_is_not_the_expected_json_is_malformed() {
    let base = spawn(Router::new().route("/garbage", get(|| async { "<html>oops</html>" }))).await;
    let err = client()
        .get_json::<Value>(&base, "/garbage", &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Malformed { .. }), "{err:?}");
    assert!(err.counts_as_failure());
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_that_never_shows_credentials() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let base =
        BaseUrl::new(Url::parse(&format!("http://admin:hunter2@127.0.0.1:{port}/")).unwrap());
    let err = client()
        .get_json::<Value>(&base, "/v1/models?key=qwerty", &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");
    assert!(err.counts_as_failure());
    let mut shown = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        shown.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    for secret in ["hunter2", "admin", "qwerty", API_KEY] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
}

#[tokio::test]
async fn a_stream_that_keeps_moving_outlives_the_call_timeout() {
    let chunks = vec!["data: 1\n\n"; 7];
    let base = spawn(Router::new().route(
        "/stream",
        post(move || async move { sse(paced_body(chunks, Duration::from_millis(150))) }),
    ))
    .await;
    let started = Instant::now();
    let stream = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert!(err.is_none(), "cut after {:?}: {err:?}", started.elapsed());
    assert_eq!(chunks.concat().len(), 7 * 9);
    assert!(started.elapsed() > CALL_TIMEOUT + IDLE_TIMEOUT);
}

#[tokio::test]
async fn a_long_gap_mid_stream_is_an_idle_timeout() {
    let base = spawn(Router::new().route(
        "/stream",
        post(|| async {
            sse(paced_body(
                vec!["data: 1\n\n", "data: 2\n\n"],
                Duration::from_secs(3),
            ))
        }),
    ))
    .await;
    let stream = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert_eq!(chunks.concat(), Bytes::from_static(b"data: 1\n\n"));
    assert!(
        matches!(err, Some(UpstreamError::IdleTimeout(d)) if d == IDLE_TIMEOUT),
        "{err:?}"
    );
    assert!(err.unwrap().counts_as_failure());
}

#[tokio::test]
async fn headers_without_a_first_chunk_in_time_are_a_timeout() {
    let base = spawn(Router::new().route(
        "/stream",
        post(|| async {
            sse(Body::from_stream(async_stream::stream! {
                tokio::time::sleep(Duration::from_secs(3)).await;
                yield Ok::<_, std::io::Error>(Bytes::from_static(b"data: late\n\n"));
            }))
        }),
    ))
    .await;
    let stream = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert!(chunks.is_empty());
    assert!(matches!(err, Some(UpstreamError::Timeout(_))), "{err:?}");
}

#[tokio::test]
async fn a_stream_dropped_midway_is_a_broken_stream() {
    let base = spawn(Router::new().route(
        "/stream",
        post(|| async {
            sse(Body::from_stream(async_stream::stream! {
                yield Ok::<_, std::io::Error>(Bytes::from_static(b"event: token\ndata: {}\n\n"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                yield Err(std::io::Error::other("upstream crashed"));
            }))
        }),
    ))
    .await;
    let stream = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap();
    let (chunks, err) = collect(stream).await;
    assert_eq!(chunks.len(), 1);
    assert!(matches!(err, Some(UpstreamError::Stream(_))), "{err:?}");
    assert!(err.unwrap().counts_as_failure());
}

#[tokio::test]
async fn an_error_status_on_a_stream_is_reported_before_any_chunk() {
    let base = spawn(Router::new().route(
        "/stream",
        post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded") }),
    ))
    .await;
    let err = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_upstream_request() {
    let (cancelled_tx, cancelled_rx) = oneshot::channel::<()>();
    let cancelled_tx = Arc::new(std::sync::Mutex::new(Some(cancelled_tx)));
    let base = spawn(Router::new().route(
        "/stream",
        post(move || async move {
            /// Signals when the response body is dropped by the server (the client left).
            struct OnDrop(Arc<std::sync::Mutex<Option<oneshot::Sender<()>>>>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    if let Some(tx) = self.0.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
            }
            let guard = OnDrop(cancelled_tx);
            sse(Body::from_stream(async_stream::stream! {
                let _guard = guard;
                loop {
                    yield Ok::<_, std::io::Error>(Bytes::from_static(b": ping\n\n"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }))
        }),
    ))
    .await;
    let mut stream = client()
        .post_stream(&base, "/stream", &json!({}), &ctx())
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    timeout(TEST_LIMIT, cancelled_rx)
        .await
        .expect("the upstream noticed the cancellation")
        .unwrap();
}

#[tokio::test]
async fn sse_events_parse_an_upstream_stream_end_to_end() {
    let base = spawn(Router::new().route(
        "/chat",
        post(|| async {
            sse(paced_body(
                vec![
                    ": ping\r\n\r\nevent: token\r\ndata: {\"content\":\"Hel\"}\r",
                    "\n\r\nevent: token\r\ndata: {\"content\":\"lo\"}\r\n\r\n",
                    "event: complete\r\ndata: {}\r\n\r\n",
                ],
                Duration::from_millis(10),
            ))
        }),
    ))
    .await;
    let bytes = client()
        .post_stream(&base, "/chat", &json!({}), &ctx())
        .await
        .unwrap();
    let events: Vec<_> = timeout(
        TEST_LIMIT,
        sse_events(bytes, SseLimits::default()).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    let names: Vec<_> = events.iter().map(|e| &*e.event).collect();
    assert_eq!(names, ["token", "token", "complete"]);
    assert_eq!(events[1].data, "{\"content\":\"lo\"}");
}

fn counting_server(status: StatusCode) -> (Arc<AtomicU32>, Router) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&hits);
    let router = Router::new().route(
        "/search",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { status }
        }),
    );
    (hits, router)
}

fn breaker() -> CircuitBreaker {
    CircuitBreaker::new("search", BreakerConfig::default())
}

const FAST_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(20),
};

#[tokio::test]
async fn retry_stops_at_a_4xx() {
    let (hits, router) = counting_server(StatusCode::UNPROCESSABLE_ENTITY);
    let base = spawn(router).await;
    let client = client();
    let (query, ctx) = (json!({"query": "q"}), ctx());
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = retry(&breaker(), &FAST_RETRY, deadline, || {
        client.post_json::<_, Value>(&base, "/search", &query, &ctx)
    })
    .await;
    assert!(
        matches!(&result, Err(CallError::Upstream(e)) if e.status() == Some(422)),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_repeats_a_5xx_up_to_max_attempts() {
    let (hits, router) = counting_server(StatusCode::BAD_GATEWAY);
    let base = spawn(router).await;
    let client = client();
    let (query, ctx) = (json!({"query": "q"}), ctx());
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = retry(&breaker(), &FAST_RETRY, deadline, || {
        client.post_json::<_, Value>(&base, "/search", &query, &ctx)
    })
    .await;
    assert!(
        matches!(&result, Err(CallError::Upstream(e)) if e.status() == Some(502)),
        "{result:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), FAST_RETRY.max_attempts);
}

#[tokio::test]
async fn a_json_answer_over_the_body_cap_is_refused_whether_declared_or_streamed() {
    let declared = "x".repeat(64);
    let base = spawn(
        Router::new()
            .route("/declared", get(move || async move { declared }))
            .route(
                "/streamed",
                get(|| async {
                    paced_body(
                        vec!["\"", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "\""],
                        Duration::ZERO,
                    )
                }),
            )
            .route("/small", get(|| async { "\"ok\"" })),
    )
    .await;
    let mut config = UpstreamConfig::new(API_KEY, CALL_TIMEOUT, IDLE_TIMEOUT);
    config.max_body_bytes = 16;
    let capped = UpstreamClient::new(config).unwrap();
    for path in ["/declared", "/streamed"] {
        let result = capped.get_json::<Value>(&base, path, &ctx()).await;
        assert!(
            matches!(result, Err(UpstreamError::TooLarge { limit: 16, .. })),
            "{path}: {result:?}"
        );
    }
    let small: Value = capped.get_json(&base, "/small", &ctx()).await.unwrap();
    assert_eq!(small, "ok");
}
