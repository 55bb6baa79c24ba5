//! `/api/ai/*` and `/api/search/*` forwarded to the AI service.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{assert_problem, spawn_app};

#[derive(Clone, Default)]
struct Upstream {
    search_calls: Arc<AtomicUsize>,
    other_calls: Arc<AtomicUsize>,
    last_headers: Arc<Mutex<Option<HeaderMap>>>,
}

async fn echo(State(up): State<Upstream>, request: Request) -> impl IntoResponse {
    *up.last_headers.lock().await = Some(request.headers().clone());
    let query = request.uri().query().unwrap_or_default().to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        StatusCode::CREATED,
        [
            ("x-upstream", "kept"),
            ("set-cookie", "upstream=leak"),
            ("content-type", "application/json"),
        ],
        json!({"echo": String::from_utf8_lossy(&body), "query": query}).to_string(),
    )
}

async fn search(State(up): State<Upstream>) -> impl IntoResponse {
    let n = up.search_calls.fetch_add(1, Ordering::SeqCst) + 1;
    (
        [("content-type", "application/json")],
        json!({"results": ["r1"], "n": n}).to_string(),
    )
}

async fn other(State(up): State<Upstream>) -> impl IntoResponse {
    up.other_calls.fetch_add(1, Ordering::SeqCst);
    "reached a route outside the passthrough"
}

async fn broken() -> impl IntoResponse {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "stack trace at /srv/internal/secret.py line 42",
    )
}

async fn start(up: Upstream) -> String {
    let app = axum::Router::new()
        .route("/api/ai/echo", any(echo))
        .route("/api/search/passages", get(search))
        .route("/api/ai/broken", any(broken))
        .fallback(other)
        .with_state(up);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn passthrough_keeps_status_body_and_safe_headers_only() {
    let up = Upstream::default();
    let url = start(up.clone()).await;
    let app = spawn_app(&[("AI_SERVICE_URL", &url), ("AI_API_KEY", "upstream-key-123")]).await;
    let token = app.token("proxy-user");
    let response = app
        .client
        .post(app.at("/api/ai/echo?x=1&y=two"))
        .bearer_auth(&token)
        .header("cookie", "sluice_token=should-not-travel")
        .header("x-request-id", "req-passthrough-1")
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers().get("x-upstream").unwrap(), "kept");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "upstream cookies dropped"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["echo"], r#"{"hello":"world"}"#);
    assert_eq!(body["query"], "x=1&y=two");

    let seen = up.last_headers.lock().await.clone().unwrap();
    assert_eq!(
        seen.get("authorization").unwrap(),
        "Bearer upstream-key-123",
        "the API key, not the user's JWT"
    );
    assert_eq!(seen.get("x-user-id").unwrap(), "proxy-user");
    assert_eq!(seen.get("x-request-id").unwrap(), "req-passthrough-1");
    assert!(
        seen.get("cookie").is_none(),
        "browser cookies stay at the gateway"
    );

    // Passthrough needs a user.
    let anonymous = app.client.get(app.at("/api/ai/echo")).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;
}

/// A HEAD (its answer has a length and no body) and a body too large to hold, streamed on to
/// the AI service, both pass through.
#[tokio::test]
async fn head_answers_and_large_bodies_pass_through() {
    let up = Upstream::default();
    let url = start(up.clone()).await;
    let app = spawn_app(&[("AI_SERVICE_URL", &url), ("AI_API_KEY", "upstream-key-123")]).await;
    let token = app.token("proxy-user");
    for _ in 0..2 {
        let head = app
            .client
            .head(app.at("/api/ai/echo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 201);
        assert_eq!(head.headers()["x-upstream"], "kept");
        assert!(head.bytes().await.unwrap().is_empty());
    }
    let large = "x".repeat(100 * 1024);
    let response = app
        .client
        .post(app.at("/api/ai/echo"))
        .bearer_auth(&token)
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["echo"], large);
}

/// The status line of a request sent with `path` exactly as given (HTTP clients resolve dot
/// segments before sending; an attacker's need not).
async fn raw_get_status(addr: std::net::SocketAddr, path: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn paths_that_climb_out_of_the_passthrough_are_refused() {
    let up = Upstream::default();
    let url = start(up.clone()).await;
    let app = spawn_app(&[("AI_SERVICE_URL", &url)]).await;
    let token = app.token("climber");
    for path in [
        "/api/ai/../../admin",
        "/api/ai/%2e%2e/%2E%2e/v1/models",
        "/api/search/..%2F..%2Fadmin",
        "/api/ai/./echo",
    ] {
        let status = raw_get_status(app.addr, path, &token).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{path}: {status}");
    }
    assert_eq!(
        up.other_calls.load(Ordering::SeqCst),
        0,
        "nothing forwarded"
    );
    let fine = raw_get_status(app.addr, "/api/ai/echo", &token).await;
    assert!(fine.starts_with("HTTP/1.1 201"), "{fine}");
}

#[tokio::test]
async fn search_responses_are_cached_per_user() {
    let up = Upstream::default();
    let url = start(up.clone()).await;
    let app = spawn_app(&[("AI_SERVICE_URL", &url)]).await;
    let token = app.token("searcher");
    let get = |token: String| {
        let request = app
            .client
            .get(app.at("/api/search/passages?q=whale"))
            .bearer_auth(token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = get(token.clone()).await;
    let second = get(token.clone()).await;
    assert_eq!(first, second);
    assert_eq!(
        up.search_calls.load(Ordering::SeqCst),
        1,
        "served from cache"
    );
    get(app.token("another-user")).await;
    assert_eq!(
        up.search_calls.load(Ordering::SeqCst),
        2,
        "cache is per user"
    );
}

#[tokio::test]
async fn upstream_5xx_is_a_clean_502_and_an_open_breaker_rejects_at_once() {
    let up = Upstream::default();
    let url = start(up.clone()).await;
    let app = spawn_app(&[
        ("AI_SERVICE_URL", &url),
        ("BREAKER_WINDOW", "2"),
        ("BREAKER_OPEN_SECS", "30"),
    ])
    .await;
    let token = app.token("breaker-proxy");
    for _ in 0..2 {
        let response = app
            .client
            .get(app.at("/api/ai/broken"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 502, "upstream_error").await;
        assert!(
            !problem.to_string().contains("secret.py"),
            "upstream body never leaks"
        );
        assert!(
            !problem.to_string().contains(&url),
            "upstream URL never leaks"
        );
    }
    let started = std::time::Instant::now();
    let response = app
        .client
        .get(app.at("/api/ai/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after));
    assert_problem(response, 503, "ai_unavailable").await;
    assert!(
        up.last_headers.lock().await.is_none(),
        "the open breaker kept the call away"
    );
}

#[tokio::test]
async fn unreachable_ai_service_is_503_ai_unavailable() {
    let app = spawn_app(&[("AI_SERVICE_URL", "http://127.0.0.1:1")]).await;
    let token = app.token("nobody-home");
    let response = app
        .client
        .get(app.at("/api/ai/anything"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 503, "ai_unavailable").await;
    assert!(!problem.to_string().contains("127.0.0.1:1"));
}
