//! The last calls to the AI API, for `GET /__mock/requests`: lets gateway tests check what it
//! forwarded (path and query, `X-Request-Id`, `X-User-Id`) and what the mock answered.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use super::state::SharedState;

/// How many calls are kept; older ones are forgotten.
const CAPACITY: usize = 256;

/// One call as it reached the mock. The `Authorization` header is never kept.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoggedRequest {
    method: String,
    /// Path and query, as received.
    path: String,
    request_id: Option<String>,
    user_id: Option<String>,
    status: u16,
}

/// The most recent calls, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<LoggedRequest>>,
}

impl RequestLog {
    fn push(&self, entry: LoggedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The calls kept, oldest first.
    pub(crate) fn entries(&self) -> Vec<LoggedRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }

    /// Forgets every call.
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Records the call once its answer (headers) is ready; rejected calls are recorded too.
pub(crate) async fn record(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id");
    let user_id = header("x-user-id");
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let response = next.run(request).await;
    state.requests.push(LoggedRequest {
        method,
        path,
        request_id,
        user_id,
        status: response.status().as_u16(),
    });
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entry(n: usize) -> LoggedRequest {
        LoggedRequest {
            method: "GET".into(),
            path: format!("/{n}"),
            request_id: None,
            user_id: None,
            status: 200,
        }
    }

    #[test]
    fn keeps_only_the_most_recent_calls() {
        let log = RequestLog::default();
        for n in 0..CAPACITY + 3 {
            log.push(entry(n));
        }
        let entries = log.entries();
        assert_eq!(entries.len(), CAPACITY);
        assert_eq!(entries[0].path, "/3");
        log.clear();
        assert!(log.entries().is_empty());
    }
}
