//! The middleware stack, in one place, outermost first.

use std::convert::Infallible;
use std::time::Duration;

use axum::BoxError;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use super::compression::CompressionWhenAsked;
use super::middleware;
use super::request_id::{self, REQUEST_ID_HEADER, REQUEST_ID_NAME};
use crate::error::{ApiError, ErrorCode};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long an ordinary (non-streaming) handler may take to produce its response head.
/// Streams return their head at once, so this never cuts a stream.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// Wraps the router in the shared middleware. Listed outermost first; each layer says why.
///
/// The layers wrap the router once, as one service, rather than through `Router::layer`,
/// which would wrap every route separately and clone and box each layer per request. Only
/// what needs the matched route (metrics, and the route field of the trace span) runs inside
/// the router; see `crate::http::metrics_layer`. The result is served as it is, not wrapped
/// in a second `Router` (a route lookup, a boxed clone and a boxed future per request).
pub fn apply(router: Router, cors_origins: &[String]) -> impl App + use<> {
    ServiceBuilder::new()
        // 1. Every request gets an id (kept from the caller when present), echoed back and
        //    readable while building any response (error bodies carry it); handlers past
        //    30 s give a clean 503 instead of holding a connection forever; security headers
        //    on every response. One middleware for all of it: each layer costs a clone and
        //    moves of the request per call. A plain service (`super::middleware`), not
        //    `from_fn`, which boxes the rest of the stack per request.
        .layer(middleware::layer((), edge))
        // 2. One span per request with method, route and request id; credentials are marked
        //    sensitive so no layer ever prints them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        // 3. A panicking handler becomes a 500 problem, not a dropped connection.
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                ApiError::new(ErrorCode::Internal, "an unexpected error occurred").into_response()
            },
        ))
        // 4. CORS for the configured origins only; same-origin (the default) needs none, nor
        //    the `Vary` headers the layer would add to every response.
        .option_layer((!cors_origins.is_empty()).then(|| cors(cors_origins)))
        // 5. Compression for clients that accept it, never for event streams (they must
        //    flush event by event): the default predicate already leaves out
        //    `text/event-stream`, gRPC and images.
        .layer(CompressionWhenAsked::new(
            CompressionLayer::new().compress_when(DefaultPredicate::new()),
        ))
        // 6. Bodies over 1 MiB are refused by the extractors with 413.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(router)
}

/// The whole application as the listener serves it: the router inside the shared middleware.
pub trait App:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The span's `route` is recorded inside the router, where the matched route is known.
fn make_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_NAME)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = tracing::field::Empty,
        request_id
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static(REQUEST_ID_HEADER),
            header::RETRY_AFTER,
            header::LOCATION,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
}

/// The outermost layer (a [`middleware::layer`] fn); it also gives the response axum's body
/// type, which the tower-http layers inside it change.
///
/// Its future is boxed: it holds the whole stack inline, and hyper moves a request's future
/// into its connection's slot, a copy (measured) dearer than the allocation.
fn edge<S, B>((): (), request: Request, inner: S) -> BoxFuture<'static, Response>
where
    S: Service<Request, Response = http::Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Box::pin(edge_inline(request, inner))
}

async fn edge_inline<S, B>(request: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut response = request_id::scope(request, |request| async move {
        // Boxed where it is made: the rest of the stack's future is large, and the scope and
        // the deadline would each move it.
        let rest = Box::pin(inner.call(request));
        match tokio::time::timeout(HANDLER_TIMEOUT, rest).await {
            Ok(Ok(response)) => response.map(Body::new),
            Err(_) => ApiError::new(ErrorCode::ServiceUnavailable, "the request took too long")
                .into_response(),
        }
    })
    .await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    fn app() -> impl App {
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/big", get(|| async { "x".repeat(4096) }))
            .route(
                "/events",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/event-stream")],
                        "data: x\n\n".repeat(512),
                    )
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(HANDLER_TIMEOUT + Duration::from_secs(1)).await;
                    "too late"
                }),
            );
        apply(router, &["https://app.example".to_string()])
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_problem_with_the_request_id() {
        let response = app()
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "panic-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-request-id"], "panic-1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal");
        assert!(
            !problem.to_string().contains("handler bug"),
            "panic message not sent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_past_the_deadline_gets_a_503_problem_with_the_edge_headers() {
        let response = app()
            .oneshot(
                Request::get("/slow")
                    .header("x-request-id", "slow-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["x-request-id"], "slow-1");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "service_unavailable");
        assert_eq!(problem["request_id"], "slow-1");
    }

    #[tokio::test]
    async fn cors_allows_only_listed_origins() {
        let preflight = |origin: &'static str| {
            Request::builder()
                .method("OPTIONS")
                .uri("/big")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .unwrap()
        };
        let allowed = app()
            .oneshot(preflight("https://app.example"))
            .await
            .unwrap();
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert_eq!(
            allowed.headers()["access-control-allow-credentials"],
            "true"
        );
        let refused = app()
            .oneshot(preflight("https://evil.example"))
            .await
            .unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }

    #[tokio::test]
    async fn ordinary_responses_are_compressed() {
        let response = app()
            .oneshot(
                Request::get("/big")
                    .header("accept-encoding", "gzip")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let vary: Vec<_> = response.headers().get_all("vary").iter().collect();
        assert!(vary.iter().any(|v| *v == "accept-encoding"), "{vary:?}");
    }

    #[tokio::test]
    async fn clients_that_accept_no_encoding_get_the_body_as_it_is() {
        let response = app()
            .oneshot(Request::get("/big").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(response.headers().get("content-encoding").is_none());
        let vary: Vec<_> = response.headers().get_all("vary").iter().collect();
        assert!(
            !vary
                .iter()
                .any(|v| v.as_bytes().starts_with(b"accept-encoding")),
            "{vary:?}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(body, "x".repeat(4096));
    }

    #[tokio::test]
    async fn event_streams_are_never_compressed() {
        let response = app()
            .oneshot(
                Request::get("/events")
                    .header("accept-encoding", "gzip")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("content-encoding").is_none());
    }
}
