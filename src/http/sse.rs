//! Server-Sent Events responses that nothing buffers: `Cache-Control: no-cache`,
//! `X-Accel-Buffering: no` (nginx), never compressed (see `stack`), a keep-alive comment once
//! a stream has been idle for the keep-alive interval so idle-timeout load balancers don't cut
//! a slow model, and an end when the gateway shuts down ([`StreamsEnd`]).
//!
//! Written here rather than with axum's `Sse` because this runs once per relayed token, for
//! thousands of streams: axum builds each event in fragments (a buffer grown and a newline
//! scan per fragment, ~4 reallocations per token event), resets a timer on every event for
//! its keep-alive, and the shutdown guard (`take_until`) locked the cancellation's waiter
//! list on every poll. Here a frame is written into one buffer sized up front, the keep-alive
//! timer moves once per interval, and shutdown is an atomic load per poll.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::woken_only::WokenOnly;
use crate::idle_timer::IdleTimer;

/// The comment sent on an idle stream.
const KEEP_ALIVE: &[u8] = b":keep-alive\n\n";

/// Ends every open SSE stream at once: the gateway fires it when shutdown begins, so that
/// graceful shutdown drains the streams.
///
/// Not the shutdown token itself, because a stream asks on every poll whether it fired, and
/// `CancellationToken::is_cancelled` locks the token's mutex: a write to a shared cache line
/// per poll (1.4 % of the gateway's CPU at 1,000 streams). This flag is written once.
#[derive(Debug, Clone, Default)]
pub struct StreamsEnd {
    fired: Arc<AtomicBool>,
    /// Wakes the streams; cancelled only after `fired` is set, so a woken stream sees it.
    wake: CancellationToken,
}

impl StreamsEnd {
    /// Ends every stream made with this (and any made later).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.wake.cancel();
    }
}

/// Wraps a stream of frames (see [`Frame`]) into the response every SSE route returns. The
/// stream ends when `end` fires.
pub fn sse_response<S>(frames: S, keepalive: Duration, end: &StreamsEnd) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let body = SseBody {
        frames: Box::pin(frames),
        keepalive,
        timer: IdleTimer::new(Instant::now() + keepalive),
        last_sent: Instant::now(),
        ended: end.fired.clone(),
        end_wait: Box::pin(end.wake.clone().cancelled_owned()),
        end_registered: false,
    };
    let mut response = Response::new(Body::from_stream(WokenOnly::new(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Frames, keep-alive comments on idle, and the end at shutdown.
struct SseBody {
    frames: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    keepalive: Duration,
    /// Fires `keepalive` after the last frame or comment.
    timer: IdleTimer,
    last_sent: Instant,
    /// [`StreamsEnd`]'s flag: only this is read per poll.
    ended: Arc<AtomicBool>,
    /// Polled once, to register this body's task for the wake-up at the end (and kept, as
    /// dropping it would unregister); after that the flag says on each poll whether it came.
    end_wait: Pin<Box<WaitForCancellationFutureOwned>>,
    end_registered: bool,
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if !this.end_registered {
            if this.end_wait.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            // Registered with this task's waker, which stays the same for the body's life.
            this.end_registered = true;
        }
        match this.frames.as_mut().poll_next(cx) {
            Poll::Ready(Some(frame)) => {
                this.last_sent = Instant::now();
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        // The timer is not reset per frame (see `IdleTimer`).
        if this
            .timer
            .poll_due(this.last_sent + this.keepalive, cx)
            .is_ready()
        {
            this.last_sent = Instant::now();
            this.timer.reset(this.last_sent + this.keepalive);
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}

/// One SSE frame, written into a single buffer: fields in order, then [`Frame::finish`].
///
/// Ids and event names are the gateway's own (no line breaks); data may be anything and is
/// split into one `data:` line per line, as the SSE format requires.
pub struct Frame(Vec<u8>);

impl Frame {
    /// A frame expected to be about `payload_hint` bytes of data.
    pub fn new(payload_hint: usize) -> Self {
        Self(Vec::with_capacity(payload_hint + 48))
    }

    /// `id: <id>`.
    pub fn id(mut self, id: &str) -> Self {
        self.field(b"id: ", id.as_bytes());
        self
    }

    /// `event: <name>`.
    pub fn event(mut self, name: &str) -> Self {
        self.field(b"event: ", name.as_bytes());
        self
    }

    /// `data: <payload as compact JSON>`: one line, since compact JSON escapes every line
    /// break. Serialising our own types cannot fail; if it did, the data is `{}` rather than
    /// ending the stream.
    pub fn json_data(mut self, payload: &impl serde::Serialize) -> Self {
        self.0.extend_from_slice(b"data: ");
        let start = self.0.len();
        if serde_json::to_writer(&mut self.0, payload).is_err() {
            self.0.truncate(start);
            self.0.extend_from_slice(b"{}");
        }
        self.0.push(b'\n');
        self
    }

    /// `data: {"<key>":<value as a JSON string>}`, what [`Frame::json_data`] writes for a
    /// one-field object, without serde's map machinery (for the chat's token, one frame per
    /// token for thousands of streams). `key` is one of ours and is written as it is.
    pub fn json_string_field(mut self, key: &str, value: &str) -> Self {
        debug_assert!(!key.contains(['"', '\\']) && !key.contains(char::is_control));
        self.0.extend_from_slice(b"data: {\"");
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut self.0, value);
        self.0.extend_from_slice(b"}\n");
        self
    }

    /// `data: <line>` for each line of `text` (LF, CR or CRLF breaks).
    pub fn data(mut self, text: &str) -> Self {
        let mut rest = text.as_bytes();
        loop {
            let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
            self.field(b"data: ", &rest[..end]);
            if end == rest.len() {
                return self;
            }
            let skip = if rest[end..].starts_with(b"\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
        }
    }

    /// The frame, with the blank line that dispatches it.
    pub fn finish(mut self) -> Bytes {
        self.0.push(b'\n');
        Bytes::from(self.0)
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.0.extend_from_slice(name);
        self.0.extend_from_slice(value);
        self.0.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::StreamExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_frame_has_its_fields_in_order_and_one_data_line_per_line() {
        let frame = Frame::new(8)
            .id("7")
            .event("progress")
            .json_data(&json!({ "message": "two\nlines" }))
            .finish();
        assert_eq!(
            &frame[..],
            b"id: 7\nevent: progress\ndata: {\"message\":\"two\\nlines\"}\n\n"
        );
        for value in [
            "plain",
            "quote \" back\\slash",
            "two\nlines\r\u{1}",
            "h\u{e9} \u{1F600}",
            "",
        ] {
            assert_eq!(
                Frame::new(0).json_string_field("content", value).finish(),
                Frame::new(0)
                    .json_data(&json!({ "content": value }))
                    .finish(),
                "{value:?}"
            );
        }
        let frame = Frame::new(8).data("a\nb\r\nc\rd").finish();
        assert_eq!(&frame[..], b"data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(&Frame::new(0).data("").finish()[..], b"data: \n\n");
    }

    #[tokio::test]
    async fn the_response_is_an_unbuffered_event_stream() {
        let response = sse_response(
            frames_never_ending(),
            Duration::from_secs(15),
            &StreamsEnd::default(),
        );
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
    }

    fn frames_never_ending() -> impl Stream<Item = Bytes> + Send {
        futures_util::stream::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_a_comment_each_interval_after_its_last_frame() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let response = sse_response(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            Duration::from_secs(15),
            &StreamsEnd::default(),
        );
        let mut body = response.into_body().into_data_stream();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        tx.send(Bytes::from_static(b"data: x\n\n")).unwrap();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"data: x\n\n");
        // The timer set at the start fires at 15 s, but the last frame was at 10 s.
        assert_eq!(&body.next().await.unwrap().unwrap()[..], KEEP_ALIVE);
        assert_eq!(started.elapsed(), Duration::from_secs(25));
        assert_eq!(&body.next().await.unwrap().unwrap()[..], KEEP_ALIVE);
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_ends_an_idle_stream() {
        let end = StreamsEnd::default();
        let response = sse_response(frames_never_ending(), Duration::from_secs(15), &end);
        let mut body = response.into_body().into_data_stream();
        let reader = tokio::spawn(async move { body.next().await.is_none() });
        tokio::time::sleep(Duration::from_secs(1)).await;
        end.fire();
        // Well before the keep-alive, whose timer would also wake the body.
        let ended = tokio::time::timeout(Duration::from_secs(1), reader).await;
        assert!(
            ended.expect("woken by the end").unwrap(),
            "ended without a frame"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_reads_the_flag_not_the_token() {
        // The flag alone, as a stream polled between `fire`'s two steps sees it: a body that
        // asked the token instead (a lock per poll) would not end until the token fired.
        let end = StreamsEnd::default();
        end.fired.store(true, Ordering::Release);
        let response = sse_response(frames_never_ending(), Duration::from_secs(15), &end);
        let mut body = response.into_body().into_data_stream();
        let first = tokio::time::timeout(Duration::from_secs(1), body.next()).await;
        assert!(
            first.expect("ended at once").is_none(),
            "ended without a frame"
        );
    }
}
