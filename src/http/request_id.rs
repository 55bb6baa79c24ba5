//! The request id of the request being handled, readable wherever a response is built.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Header carrying the request id in and out, and on to the AI service.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The current request's id, or `None` outside a request.
///
/// Error bodies carry it (`request_id`), so it must be reachable from `IntoResponse`, which
/// has no access to the request; a task-local scoped around the handler gives exactly that.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Middleware: runs the rest of the stack inside the request id's scope.
///
/// Runs after tower-http's `SetRequestIdLayer`, so the header is always present.
pub async fn scope(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST_ID.scope(id, next.run(request)).await
}
