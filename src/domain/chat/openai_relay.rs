//! The OpenAI-compatible API forwarded to the primary AI service, then to each fallback in
//! order (`AiService::openai_upstreams`), each behind its own breaker.
//!
//! A call moves on to the next upstream when the breaker rejects it or the upstream fails in a
//! way that says it is unhealthy (connect, timeout, 5xx, broken or malformed answer); a 4xx is
//! the upstream judging our request, so it is returned as is. A stream is only committed to an
//! upstream once its first chunk has arrived: until then nothing has been sent to the client
//! and the next upstream can still serve. After that a failure ends the stream with an
//! OpenAI-style error chunk and `[DONE]`, never silence.

use std::future::Future;

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use crate::limits::StreamSlot;
use crate::metrics::Metrics;
use crate::upstream::{
    AiService, CallContext, CallError, OpenAiUpstream, Permit, SseEvent, SseLimits, UpstreamError,
    record_outcome, sse_events,
};

const COMPLETIONS: &str = "/v1/chat/completions";
const MODELS: &str = "/v1/models";

/// One frame of a relayed completion stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAiChunk {
    /// A `data:` payload (a JSON chunk, or the error chunk).
    Data(String),
    /// The final `data: [DONE]`.
    Done,
}

/// What one upstream event means for the relay.
enum Frame {
    Chunk(String),
    Done,
    Ignore,
}

/// Forwards OpenAI-compatible calls. Cheap to clone.
#[derive(Clone)]
pub struct OpenAiRelay {
    ai: AiService,
    metrics: Metrics,
}

impl OpenAiRelay {
    /// A relay over the AI service's OpenAI-compatible upstreams.
    pub fn new(ai: AiService, metrics: Metrics) -> Self {
        Self { ai, metrics }
    }

    /// `GET /v1/models`.
    pub async fn models(&self, ctx: &CallContext) -> Result<Value, CallError> {
        let client = self.ai.client().clone();
        self.with_fallbacks(MODELS, |upstream, permit| {
            let client = client.clone();
            async move {
                let outcome = client.get_json(&upstream.base, MODELS, ctx).await;
                record_outcome(permit, &outcome);
                outcome
            }
        })
        .await
    }

    /// `POST /v1/chat/completions` without streaming: the upstream's JSON answer.
    pub async fn complete(&self, body: &Value, ctx: &CallContext) -> Result<Value, CallError> {
        let client = self.ai.client().clone();
        self.with_fallbacks(COMPLETIONS, |upstream, permit| {
            let client = client.clone();
            async move {
                let outcome = client
                    .post_json(&upstream.base, COMPLETIONS, body, ctx)
                    .await;
                record_outcome(permit, &outcome);
                outcome
            }
        })
        .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: returns once an upstream has sent its
    /// first chunk; the rest is relayed as it arrives. `slot` is held until the stream ends.
    pub async fn stream(
        &self,
        body: &Value,
        ctx: &CallContext,
        slot: StreamSlot,
    ) -> Result<BoxStream<'static, OpenAiChunk>, CallError> {
        let started = Instant::now();
        let client = self.ai.client().clone();
        let (first, events, permit) = self
            .with_fallbacks(COMPLETIONS, |upstream, permit| {
                let client = client.clone();
                async move {
                    let opened = client
                        .post_stream(&upstream.base, COMPLETIONS, body, ctx)
                        .await;
                    let bytes = match opened {
                        Ok(bytes) => bytes,
                        Err(err) => {
                            permit.record(err.counts_as_failure());
                            return Err(err);
                        }
                    };
                    let mut events = sse_events(bytes, SseLimits::default()).boxed();
                    match first_frame(&mut events).await {
                        Ok(first) => Ok((first, events, permit)),
                        Err(err) => {
                            permit.record(err.counts_as_failure());
                            Err(err)
                        }
                    }
                }
            })
            .await?;
        self.metrics.time_to_first_token(started.elapsed());
        Ok(relay(first, events, permit, self.metrics.clone(), slot).boxed())
    }

    /// Runs `call` against each upstream in order until one answers; `call` records the
    /// outcome on the permit it is given.
    async fn with_fallbacks<'a, T, F, Fut>(
        &'a self,
        route: &'static str,
        mut call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(&'a OpenAiUpstream, Permit) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut last: Option<CallError> = None;
        for (index, upstream) in self.ai.openai_upstreams().iter().enumerate() {
            let permit = match upstream.breaker.acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    self.ai.note_rejection(&upstream.breaker);
                    last.get_or_insert(CallError::Rejected(rejected));
                    continue;
                }
            };
            let started = Instant::now();
            let outcome = call(upstream, permit).await;
            self.metrics
                .upstream_duration(upstream.breaker.label(), started.elapsed());
            match outcome {
                Ok(value) => {
                    if index > 0 {
                        self.metrics.fallback(route, upstream.breaker.label());
                    }
                    return Ok(value);
                }
                Err(err) => {
                    tracing::warn!(
                        upstream = upstream.breaker.name(),
                        error = %err,
                        "OpenAI-compatible upstream failed"
                    );
                    let next = err.counts_as_failure();
                    last = Some(CallError::Upstream(err));
                    if !next {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or(CallError::Upstream(UpstreamError::Request(
            "no OpenAI-compatible upstream is configured",
        ))))
    }
}

/// Waits for the first chunk (or `[DONE]`) of a stream, skipping events with no use.
async fn first_frame(
    events: &mut BoxStream<'static, Result<SseEvent, UpstreamError>>,
) -> Result<OpenAiChunk, UpstreamError> {
    loop {
        match events.next().await {
            Some(Ok(event)) => match interpret(&event)? {
                Frame::Chunk(data) => return Ok(OpenAiChunk::Data(data)),
                Frame::Done => return Ok(OpenAiChunk::Done),
                Frame::Ignore => {}
            },
            Some(Err(err)) => return Err(err),
            None => return Err(UpstreamError::Stream(None)),
        }
    }
}

/// The committed stream: `first`, then every later chunk, then `[DONE]`; a failure gives the
/// error chunk and `[DONE]`. The breaker counts a success only after the upstream's `[DONE]`.
fn relay(
    first: OpenAiChunk,
    mut events: BoxStream<'static, Result<SseEvent, UpstreamError>>,
    permit: Permit,
    metrics: Metrics,
    slot: StreamSlot,
) -> impl Stream<Item = OpenAiChunk> + Send + 'static {
    async_stream::stream! {
        let _slot = slot;
        let _gauge = metrics.sse_stream("openai");
        let chunks_sent = metrics.sse_event_counter("openai", "chunk");
        let mut next: Result<Frame, UpstreamError> = Ok(Frame::from(first));
        loop {
            match next {
                Ok(Frame::Chunk(data)) => {
                    chunks_sent.inc();
                    yield OpenAiChunk::Data(data);
                }
                Ok(Frame::Done) => {
                    permit.success();
                    metrics.sse_event("openai", "done");
                    yield OpenAiChunk::Done;
                    return;
                }
                Ok(Frame::Ignore) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "OpenAI-compatible stream failed midway");
                    permit.record(err.counts_as_failure());
                    metrics.sse_event("openai", "error");
                    yield OpenAiChunk::Data(error_chunk());
                    yield OpenAiChunk::Done;
                    return;
                }
            }
            next = match events.next().await {
                Some(Ok(event)) => interpret(&event),
                Some(Err(err)) => Err(err),
                None => Err(UpstreamError::Stream(None)),
            };
        }
    }
}

impl From<OpenAiChunk> for Frame {
    fn from(chunk: OpenAiChunk) -> Self {
        match chunk {
            OpenAiChunk::Data(data) => Self::Chunk(data),
            OpenAiChunk::Done => Self::Done,
        }
    }
}

/// `[DONE]` ends the stream; any other data must be JSON (relaying garbage would break the
/// client's parser); events without data never reach here.
fn interpret(event: &SseEvent) -> Result<Frame, UpstreamError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Frame::Done);
    }
    if data.is_empty() {
        return Ok(Frame::Ignore);
    }
    serde_json::from_str::<serde::de::IgnoredAny>(data)
        .map(|_| Frame::Chunk(data.to_owned()))
        .map_err(|err| UpstreamError::Malformed {
            detail: format!("completion chunk: {err}"),
        })
}

/// The chunk that tells an OpenAI client the stream failed.
pub fn error_chunk() -> String {
    serde_json::json!({
        "error": {
            "message": "the AI service failed in the middle of the answer",
            "type": "upstream_error",
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn data(data: &str) -> SseEvent {
        SseEvent {
            event: "message".into(),
            data: data.to_owned(),
            id: None,
        }
    }

    #[test]
    fn chunks_must_be_json_and_done_ends() {
        assert!(matches!(interpret(&data("[DONE]")), Ok(Frame::Done)));
        assert!(matches!(interpret(&data(r#"{"a":1}"#)), Ok(Frame::Chunk(c)) if c == r#"{"a":1}"#));
        assert!(matches!(
            interpret(&data("{not json")),
            Err(UpstreamError::Malformed { .. })
        ));
    }

    #[test]
    fn the_error_chunk_is_openai_shaped() {
        let chunk: Value = serde_json::from_str(&error_chunk()).unwrap();
        assert_eq!(chunk["error"]["type"], "upstream_error");
        assert!(chunk["error"]["message"].is_string());
    }
}
