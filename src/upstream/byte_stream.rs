//! A streamed upstream body with timeouts by phase: a long answer is fine as long as it keeps
//! moving, so there is never one timeout over the whole stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, stream};
use tokio::time::Instant;

use super::error::UpstreamError;
use crate::idle_timer::IdleTimer;

/// The two time limits of a stream (`UPSTREAM_TIMEOUT_MS`, `STREAM_IDLE_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// From the start of the call to the first body chunk (response headers included).
    pub first_byte: Duration,
    /// Longest gap between two body chunks once the first has arrived.
    pub idle: Duration,
}

type Inner = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Body chunks of an upstream response, ending with [`UpstreamError::Timeout`] when the first
/// chunk is late and [`UpstreamError::IdleTimeout`] when a later one is.
///
/// Dropping it drops the connection, which is how an upstream call is cancelled when the
/// browser goes away. After a timeout or an error the connection is released at once and the
/// stream ends.
pub struct ByteStream {
    inner: Inner,
    /// When the current phase's limit runs out: the first-byte deadline, then the idle one
    /// from the latest chunk.
    deadline: Instant,
    /// Armed only when the stream has to wait: a body that is already in (a JSON answer read
    /// with its headers) never registers a timer with the runtime, which costs a lock and
    /// can wake the event loop once more.
    timer: Option<IdleTimer>,
    timeouts: StreamTimeouts,
    started: bool,
    done: bool,
}

impl ByteStream {
    /// Applies `timeouts` to `inner`, counting the first-byte budget from `call_started`.
    ///
    /// Public so that an in-process source (the simulated AI service) can be given the same
    /// guarantees as an HTTP body.
    pub fn new(
        inner: impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
        call_started: Instant,
        timeouts: StreamTimeouts,
    ) -> Self {
        Self {
            inner: Box::pin(inner),
            deadline: call_started + timeouts.first_byte,
            timer: None,
            timeouts,
            started: false,
            done: false,
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.inner = Box::pin(stream::empty());
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // Data that is ready wins over a timer that fired at the same moment.
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.started = true;
                    this.deadline = Instant::now() + this.timeouts.idle;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(err))) => {
                    this.finish();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        let deadline = this.deadline;
        // The deadline moves with every chunk; the timer only when it fires (see `IdleTimer`).
        let timer = this.timer.get_or_insert_with(|| IdleTimer::new(deadline));
        if timer.poll_due(deadline, cx).is_ready() {
            let err = if this.started {
                UpstreamError::IdleTimeout(this.timeouts.idle)
            } else {
                UpstreamError::Timeout(this.timeouts.first_byte)
            };
            this.finish();
            return Poll::Ready(Some(Err(err)));
        }
        Poll::Pending
    }
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("timeouts", &self.timeouts)
            .field("started", &self.started)
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::{FutureExt, StreamExt};

    use super::*;

    const TIMEOUTS: StreamTimeouts = StreamTimeouts {
        first_byte: Duration::from_millis(200),
        idle: Duration::from_millis(300),
    };

    /// A source that sends one chunk after each of `gaps_ms`.
    fn paced(gaps_ms: &'static [u64]) -> impl Stream<Item = Result<Bytes, UpstreamError>> {
        async_stream::stream! {
            for gap in gaps_ms {
                tokio::time::sleep(Duration::from_millis(*gap)).await;
                yield Ok(Bytes::from_static(b"x"));
            }
        }
    }

    async fn drain(stream: ByteStream) -> (usize, Option<UpstreamError>) {
        let items: Vec<_> = stream.collect().await;
        let chunks = items.iter().filter(|i| i.is_ok()).count();
        (chunks, items.into_iter().find_map(Result::err))
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_stream_that_keeps_moving_is_not_cut() {
        let started = Instant::now();
        let gaps = &[150, 250, 250, 250, 250];
        let (chunks, err) = drain(ByteStream::new(paced(gaps), started, TIMEOUTS)).await;
        assert_eq!(chunks, 5);
        assert!(err.is_none(), "unexpected {err:?}");
        assert!(started.elapsed() > TIMEOUTS.first_byte + TIMEOUTS.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_first_chunk_is_a_timeout() {
        let started = Instant::now();
        let (chunks, err) = drain(ByteStream::new(paced(&[250]), started, TIMEOUTS)).await;
        assert_eq!(chunks, 0);
        assert!(matches!(err, Some(UpstreamError::Timeout(d)) if d == TIMEOUTS.first_byte));
        assert_eq!(started.elapsed(), TIMEOUTS.first_byte);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_budget_counts_from_the_call_start() {
        let started = Instant::now();
        tokio::time::advance(Duration::from_millis(150)).await; // waiting for headers
        let (_, err) = drain(ByteStream::new(paced(&[100]), started, TIMEOUTS)).await;
        assert!(matches!(err, Some(UpstreamError::Timeout(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_gap_after_the_first_chunk_is_an_idle_timeout() {
        let (chunks, err) = drain(ByteStream::new(
            paced(&[10, 100, 400]),
            Instant::now(),
            TIMEOUTS,
        ))
        .await;
        assert_eq!(chunks, 2);
        assert!(matches!(err, Some(UpstreamError::IdleTimeout(d)) if d == TIMEOUTS.idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_is_already_in_arms_no_timer() {
        let source = stream::iter(vec![Ok(Bytes::from_static(b"{}"))]);
        let mut body = ByteStream::new(source, Instant::now(), TIMEOUTS);
        assert!(body.next().await.is_some_and(|chunk| chunk.is_ok()));
        assert!(body.next().await.is_none());
        assert!(body.timer.is_none(), "no wait, no timer");
    }

    /// The timer is not moved per chunk: a stream that keeps moving keeps the deadline it
    /// was armed with until that passes, and is then given the idle budget from its last
    /// chunk (the earlier tests check that this cuts exactly the streams it should).
    #[tokio::test(start_paused = true)]
    async fn the_timer_moves_only_when_it_fires() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let rx = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let mut body = ByteStream::new(rx, started, TIMEOUTS);
        assert!(body.next().now_or_never().is_none(), "waiting");
        let armed = body.timer.as_ref().unwrap().deadline();
        assert_eq!(armed, started + TIMEOUTS.first_byte);
        for _ in 0..3 {
            tokio::time::advance(Duration::from_millis(10)).await;
            tx.send(Ok(Bytes::from_static(b"x"))).unwrap();
            assert!(body.next().await.is_some_and(|chunk| chunk.is_ok()));
            assert!(body.next().now_or_never().is_none(), "waiting");
            assert_eq!(body.timer.as_ref().unwrap().deadline(), armed);
        }
        // Past the armed deadline, well inside the idle budget: moved, not fired.
        tokio::time::advance(TIMEOUTS.first_byte).await;
        assert!(body.next().now_or_never().is_none(), "still waiting");
        assert_eq!(
            body.timer.as_ref().unwrap().deadline(),
            started + Duration::from_millis(30) + TIMEOUTS.idle
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_follows_an_error() {
        let source = stream::iter(vec![
            Ok(Bytes::from_static(b"a")),
            Err(UpstreamError::Stream(None)),
            Ok(Bytes::from_static(b"b")),
        ]);
        let items: Vec<_> = ByteStream::new(source, Instant::now(), TIMEOUTS)
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(UpstreamError::Stream(None))));
    }
}
