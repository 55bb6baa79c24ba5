//! Middleware written as async fns and served as plain tower services.
//!
//! axum's `from_fn` wraps the rest of the stack in a boxed `Next` on every request (an
//! allocation and a clone of a boxed service), calls through it dynamically, and boxes its own
//! future. On the passthrough's path that was three layers of it per call. [`layer`] instead
//! hands the async fn the concrete inner service, already ready to call, and its future is the
//! fn's own: the same middleware shape, without the per-request boxes.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::Map;
use tower::{Layer, Service};

/// A layer that runs `f(state, request, inner)` for every request; `inner` is the rest of the
/// stack, ready to call once.
pub fn layer<F, St>(state: St, f: F) -> FnLayer<F, St> {
    FnLayer { f, state }
}

/// See [`layer`].
#[derive(Clone)]
pub struct FnLayer<F, St> {
    f: F,
    state: St,
}

impl<S, F: Clone, St: Clone> Layer<S> for FnLayer<F, St> {
    type Service = FnService<S, F, St>;

    fn layer(&self, inner: S) -> Self::Service {
        FnService {
            inner,
            f: self.f.clone(),
            state: self.state.clone(),
        }
    }
}

/// The service of an [`FnLayer`].
#[derive(Clone)]
pub struct FnService<S, F, St> {
    inner: S,
    f: F,
    state: St,
}

impl<S, F, St, Fut> Service<Request> for FnService<S, F, St>
where
    S: Service<Request, Error = Infallible> + Clone,
    F: Fn(St, Request, S) -> Fut,
    St: Clone,
    Fut: Future<Output = Response>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Fut, fn(Response) -> Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The instance polled ready goes with this request; a clone stays for the next.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        (self.f)(self.state.clone(), request, ready).map(Ok as fn(Response) -> _)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn tag<S>(name: &'static str, request: Request, mut inner: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        if name == "inner" && request.uri().path() == "/refused" {
            return StatusCode::FORBIDDEN.into_response();
        }
        let Ok(mut response) = inner.call(request).await;
        response
            .headers_mut()
            .append("x-seen-by", HeaderValue::from_static(name));
        response
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/refused", get(|| async { "never" }))
            .route_layer(layer("inner", tag))
            .layer(layer("outer", tag))
    }

    #[tokio::test]
    async fn runs_around_the_rest_of_the_stack_in_order() {
        let response = app()
            .oneshot(Request::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let seen: Vec<_> = response.headers().get_all("x-seen-by").iter().collect();
        assert_eq!(seen, ["inner", "outer"]);
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn can_answer_without_calling_the_rest() {
        let response = app()
            .oneshot(Request::get("/refused").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let seen: Vec<_> = response.headers().get_all("x-seen-by").iter().collect();
        assert_eq!(
            seen,
            ["outer"],
            "the inner layer answered; the handler never ran"
        );
    }
}
