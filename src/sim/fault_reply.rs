//! How a call answers under an injected fault, for everything that is not a token stream.

use std::io;

use axum::Json;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::faults::Fault;
use super::state::SimState;

/// A marker inside every internal-looking detail the mock leaks on purpose (error bodies, failed
/// generations). Gateway tests assert that their own responses never contain it.
pub const LEAK_CANARY: &str = "mock-leak-canary-7f3a9c";

/// The detail of an `error` fault: the sort of thing a careless service puts in a 500.
pub const INTERNAL_ERROR_DETAIL: &str = concat!(
    "Traceback (most recent call last): File \"/srv/ai/app/vector_store.py\", line 88, in search: ",
    "psycopg.OperationalError: connection to server at \"10.12.0.7\", port 5432 failed: ",
    "password authentication failed for user \"ai_worker\" ",
    "(dsn=postgresql://ai_worker:mock-leak-canary-7f3a9c@10.12.0.7:5432/vectors)"
);

/// The part of a fault that happens before anything is sent: an error answer, a hang, a delay.
///
/// `Err` is the response to send instead of the real one. Body-level faults (`malformed`,
/// `drop_mid_stream`) pass through; see [`answer`].
pub(crate) async fn before_answer(state: &SimState, fault: Option<Fault>) -> Result<(), Response> {
    match fault {
        Some(Fault::Error(status)) => Err(internal_error(status)),
        Some(Fault::Hang) => {
            // Held until the caller gives up (the server then drops this future) or shutdown.
            state.shutdown.cancelled().await;
            Err(shutting_down())
        }
        Some(Fault::Slow(slowdown)) => {
            if state.pause(slowdown.apply(state.config.token_delay)).await {
                Ok(())
            } else {
                Err(shutting_down())
            }
        }
        Some(Fault::Malformed | Fault::DropMidStream) | None => Ok(()),
    }
}

/// The JSON answer, broken as the fault says (`malformed`, `drop_mid_stream`).
pub(crate) fn answer(fault: Option<Fault>, status: StatusCode, body: &impl Serialize) -> Response {
    match fault {
        Some(Fault::Malformed) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"passage_ids\": [\"p-00<html><body>502 Bad Gateway",
        )
            .into_response(),
        Some(Fault::DropMidStream) => truncated(status, body),
        _ => (status, Json(body)).into_response(),
    }
}

/// A 5xx with a body that leaks internals, as a careless service would.
pub(crate) fn internal_error(status: StatusCode) -> Response {
    let body = json!({
        "detail": INTERNAL_ERROR_DETAIL,
        "error": { "message": INTERNAL_ERROR_DETAIL, "type": "server_error", "code": status.as_u16() },
    });
    (status, Json(body)).into_response()
}

fn shutting_down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "detail": "mock-ai is shutting down" })),
    )
        .into_response()
}

/// Sends the first half of the JSON, then fails the body so the connection is cut.
fn truncated(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let half = bytes.slice(..bytes.len() / 2);
    let chunks = async_stream::stream! {
        yield Ok::<Bytes, io::Error>(half);
        // Give the server a turn to flush the first half, or the cut eats it.
        tokio::task::yield_now().await;
        yield Err(io::Error::other("mock-ai: response dropped on purpose"));
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaked_detail_carries_the_canary() {
        assert!(INTERNAL_ERROR_DETAIL.contains(LEAK_CANARY));
    }
}
