//! Request metrics labelled by matched route. Runs inside the router (the only place the
//! matched route is known), so it also names the route on the request's trace span.

use std::convert::Infallible;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::Service;

use crate::metrics::Metrics;

/// Counts the request and observes its time to response headers.
///
/// A [`super::middleware::layer`] fn: `inner` is the route, ready to call.
pub async fn track<S>(metrics: Metrics, request: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    // A shared string: cloning it is a reference count, not a copy.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    tracing::Span::current().record("route", route);
    let method = method_label(request.method());
    let Ok(response) = inner.call(request).await;
    metrics.http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a bounded label: anything outside the standard set is `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
