//! Server-Sent Events responses that nothing buffers: `Cache-Control: no-cache`,
//! `X-Accel-Buffering: no` (nginx), never compressed (see `stack`), keep-alive comments from
//! the first second so idle-timeout load balancers don't cut a slow model, and an end when the
//! gateway shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// Wraps an event stream into the response every SSE route returns. The stream ends when
/// `shutdown` fires (graceful shutdown drains open streams this way).
pub fn sse_response<S>(events: S, keepalive: Duration, shutdown: &CancellationToken) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    let events = events
        .take_until(shutdown.clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// An SSE event with a JSON payload (serialization of our own types cannot fail; if it did,
/// the event carries `{}` rather than ending the stream).
/// The JSON is written straight into the event's buffer (this runs once per token).
pub fn json_event(name: &str, payload: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(payload)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}
