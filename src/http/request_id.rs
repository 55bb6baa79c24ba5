//! The request id of the request being handled, readable wherever a response is built.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};

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

/// Makes the id of a request that came without one: a random (v4) UUID.
///
/// Drawn from the thread's generator rather than, as tower-http's `MakeRequestUuid` does,
/// from the kernel: that is a `getrandom` system call per request, about 2 % of a proxied
/// call's CPU on the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRandomUuid;

impl MakeRequestId for MakeRandomUuid {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// Runs `rest` with the request inside the request id's scope.
///
/// Called after tower-http's `SetRequestIdLayer`, so the header is always present.
pub async fn scope<F, Fut>(request: Request, rest: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST_ID.scope(id, rest(request)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn made_ids_are_distinct_v4_uuids() {
        let request = http::Request::new(());
        let mut make = MakeRandomUuid;
        let ids: Vec<uuid::Uuid> = (0..3)
            .map(|_| {
                let id = make.make_request_id(&request).unwrap();
                uuid::Uuid::parse_str(id.header_value().to_str().unwrap()).unwrap()
            })
            .collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    }
}
