//! The request id of the request being handled, readable wherever a response is built.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

tokio::task_local! {
    /// Kept as the header value: it is forwarded as one, and cloning it is a reference count.
    static REQUEST_ID: HeaderValue;
}

/// Header carrying the request id in and out, and on to the AI service.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name: a lookup by `&str` parses the name on every call.
pub const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The current request's id, or `None` outside a request.
///
/// Error bodies carry it (`request_id`), so it must be reachable from `IntoResponse`, which
/// has no access to the request; a task-local scoped around the handler gives exactly that.
pub fn current() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// The current request's id as a header value, to forward; `None` outside a request.
pub fn current_header() -> Option<HeaderValue> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A new request id: a random (v4) UUID.
///
/// Drawn from the thread's generator rather than, as tower-http's `MakeRequestUuid` does,
/// from the kernel: that is a `getrandom` system call per request, about 2 % of a proxied
/// call's CPU on the benchmark.
pub fn new_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Runs `rest` with the request inside its id's scope, and echoes the id on the response.
///
/// The caller's `X-Request-Id` is kept; a request without one gets [`new_id`], set on the
/// request too so that every layer and the AI service see the same id. A response that
/// already names an id (an upstream's, relayed) keeps it.
pub async fn scope<F, Fut>(mut request: Request, rest: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let header = match request.headers().get(&REQUEST_ID_NAME) {
        Some(value) => value.clone(),
        None => {
            let value = new_id();
            request.headers_mut().insert(REQUEST_ID_NAME, value.clone());
            value
        }
    };
    let mut response = REQUEST_ID.scope(header.clone(), rest(request)).await;
    response
        .headers_mut()
        .entry(REQUEST_ID_NAME)
        .or_insert(header);
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::body::Body;
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn made_ids_are_distinct_v4_uuids() {
        let ids: Vec<uuid::Uuid> = (0..3)
            .map(|_| uuid::Uuid::parse_str(new_id().to_str().unwrap()).unwrap())
            .collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    }

    #[tokio::test]
    async fn the_id_is_kept_or_made_seen_inside_and_echoed() {
        let echo = |request: Request| async move {
            let seen = request.headers()[REQUEST_ID_HEADER].clone();
            assert_eq!(current().unwrap(), seen.to_str().unwrap(), "in scope");
            "ok".into_response()
        };
        let given = Request::builder()
            .header(REQUEST_ID_HEADER, "caller-7")
            .body(Body::empty())
            .unwrap();
        let response = scope(given, echo).await;
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "caller-7");

        let response = scope(Request::new(Body::empty()), echo).await;
        let made = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
        assert!(current().is_none(), "no id outside a request");
    }
}
